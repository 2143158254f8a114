// The agent's tools (wa.agent_tools): HTTP endpoints the openai agent may call, each under its own cockatiel
// timeout (at most 10 s), retry and circuit breaker, its answers cached in Postgres by (tool, arguments). A tool
// that fails answers the model with its last cached value when the tool allows it (stale), else with a clear
// error, never a hang (seed 002: an ERP's 30 s SOAP timeouts hung the socket). Every call is kept with its
// batch (wa.agent_tool_calls).
import { BrokenCircuitError, TaskCancelledError } from "cockatiel";
import type { Sql } from "../_shared/db.ts";
import { errorMessage, log } from "../_shared/log.ts";
import { type BreakerState, type Resilient, resilient } from "../_shared/resilience.ts";
import type { AgentContext } from "./store.ts";

/** A row of wa.enabled_agent_tools(). */
export interface ToolDefinition {
  name: string;
  description: string;
  parameters: Record<string, unknown>;
  endpoint: string;
  timeout_ms: number;
  cache_ttl_ms: number;
  serve_stale: boolean;
  updated_at: string;
}

export type ToolSource = "live" | "cache" | "stale" | "error" | "unknown";

/** One call as the model made it and as it was answered: a row of wa.agent_tool_calls. */
export interface ToolCallRecord {
  round: number;
  tool: string;
  arguments: Record<string, unknown> | null;
  result: unknown;
  source: ToolSource;
  error: string | null;
  duration_ms: number;
  called_at: string;
}

export interface Toolbox {
  /** The enabled tools, read once per batch. */
  definitions(): Promise<ToolDefinition[]>;
  /** Runs one call of the model; never throws for the tool's failures, only when `signal` (the agent's) aborts. */
  call(
    tools: ToolDefinition[],
    name: string,
    rawArguments: string,
    round: number,
    signal: AbortSignal,
  ): Promise<ToolCallRecord>;
  /** Keeps the calls of one agent answer with its batch; a failure is logged, never thrown. */
  audit(context: AgentContext, calls: ToolCallRecord[]): Promise<void>;
  breakerState(name: string): BreakerState | undefined;
}

export interface ToolboxOptions {
  breakerThreshold: number;
  halfOpenAfterMs: number;
  /** Milliseconds since the epoch: the cache's freshness and the breakers' half-open delay are timed on it. */
  clock: () => number;
}

/** Calls per tool call, the first included: a second try for a 5xx or a dropped connection, none after a timeout. */
export const TOOL_ATTEMPTS = 2;
const TOOL_RETRY_DELAY_MS = 200;
/** The most characters of a tool's answer given to the model. */
const MAX_CONTENT = 8000;

/** The tool answered something unusable or failed; `retryable` for 5xx, 429 and dropped connections. */
class ToolError extends Error {
  constructor(message: string, readonly retryable: boolean) {
    super(message);
    this.name = "ToolError";
  }
}

async function post(tool: ToolDefinition, args: Record<string, unknown>, signal: AbortSignal) {
  const res = await fetch(tool.endpoint, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(args),
    signal,
  });
  const text = await res.text();
  if (!res.ok) throw new ToolError(`HTTP ${res.status}`, res.status >= 500 || res.status === 429);
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new ToolError("an answer that is not JSON", false);
  }
}

/** Why a tool call failed, in words the model and the audit can use. */
function failure(error: unknown, tool: ToolDefinition): string {
  if (error instanceof BrokenCircuitError) return "its circuit breaker is open after repeated failures";
  if (error instanceof TaskCancelledError) return `no answer within ${tool.timeout_ms} ms`;
  return errorMessage(error);
}

/** What the model receives for a call: the tool's JSON, cut to MAX_CONTENT characters. */
export function toolContent(record: ToolCallRecord): string {
  const text = JSON.stringify(record.result ?? null);
  return text.length > MAX_CONTENT ? `${text.slice(0, MAX_CONTENT)}…` : text;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

export function createToolbox(sql: Sql, options: ToolboxOptions): Toolbox {
  // One policy per tool and timeout: a changed timeout starts a fresh breaker, the rest keep theirs.
  const policies = new Map<string, Resilient>();
  const policyFor = (tool: ToolDefinition): Resilient => {
    const key = `${tool.name}:${tool.timeout_ms}`;
    let policy = policies.get(key);
    if (policy === undefined) {
      policy = resilient({
        timeoutMs: tool.timeout_ms,
        maxAttempts: TOOL_ATTEMPTS,
        baseDelayMs: TOOL_RETRY_DELAY_MS,
        retryable: (error) => error instanceof ToolError ? error.retryable : error instanceof TypeError,
        breaks: () => true,
        breakerThreshold: options.breakerThreshold,
        halfOpenAfterMs: options.halfOpenAfterMs,
        clock: options.clock,
        onBreakerChange: (state) =>
          log("warn", { function: "buffer-processor", job: "tool", tool: tool.name, state }),
      });
      policies.set(key, policy);
    }
    return policy;
  };
  const now = () => new Date(options.clock()).toISOString();

  async function cached(tool: ToolDefinition, args: Record<string, unknown>) {
    const [row] = await sql<{ result: unknown; fetched_at: Date; fresh: boolean }[]>`
      select result, fetched_at, fresh
      from wa.agent_tool_cached(${tool.name}, ${JSON.stringify(args)}::text::jsonb, ${now()})`;
    return row;
  }

  async function remember(tool: ToolDefinition, args: Record<string, unknown>, result: unknown) {
    try {
      await sql`select wa.cache_agent_tool_result(${tool.name}, ${JSON.stringify(args)}::text::jsonb,
                                                  ${JSON.stringify(result)}::text::jsonb, ${now()})`;
    } catch (error) {
      // The answer stands; only a later cache hit is lost.
      log("warn", {
        function: "buffer-processor",
        job: "tool-cache",
        tool: tool.name,
        error: errorMessage(error),
      });
    }
  }

  return {
    async definitions() {
      const [row] = await sql<{ tools: ToolDefinition[] }[]>`select wa.enabled_agent_tools() as tools`;
      return row?.tools ?? [];
    },

    async call(tools, name, rawArguments, round, signal) {
      const started = performance.now();
      const calledAt = now();
      const record = (
        source: ToolSource,
        args: Record<string, unknown> | null,
        result: unknown,
        error: string | null = null,
      ): ToolCallRecord => ({
        round,
        tool: name,
        arguments: args,
        result,
        source,
        error,
        duration_ms: Math.round(performance.now() - started),
        called_at: calledAt,
      });
      const tool = tools.find((candidate) => candidate.name === name);
      if (tool === undefined) return record("unknown", null, { error: `there is no tool named ${name}` });
      let args: unknown;
      try {
        args = JSON.parse(rawArguments === "" ? "{}" : rawArguments);
      } catch {
        args = undefined;
      }
      if (!isObject(args)) {
        return record("unknown", null, { error: `the arguments of ${name} must be a JSON object` });
      }
      const hit = await cached(tool, args);
      if (hit?.fresh) return record("cache", args, hit.result);
      try {
        const result = await policyFor(tool).execute((attempt) =>
          post(tool, args, AbortSignal.any([attempt, signal]))
        );
        if (tool.cache_ttl_ms > 0 || tool.serve_stale) await remember(tool, args, result);
        return record("live", args, result);
      } catch (error) {
        // The agent's own deadline passed: no answer is owed to a model nobody waits for.
        if (signal.aborted) throw error;
        const reason = failure(error, tool);
        if (tool.serve_stale && hit !== undefined) {
          return record("stale", args, {
            stale: true,
            as_of: hit.fetched_at.toISOString(),
            result: hit.result,
          }, reason);
        }
        return record("error", args, { error: `${name} is unavailable: ${reason}` }, reason);
      }
    },

    async audit(context, calls) {
      try {
        await sql`select wa.record_agent_tool_calls(${context.conversation.id}, ${context.batch.fence},
                                                    ${JSON.stringify(calls)}::text::jsonb)`;
      } catch (error) {
        log("warn", { function: "buffer-processor", job: "tool-audit", error: errorMessage(error) });
      }
    },

    breakerState(name) {
      const entry = [...policies].find(([key]) => key.startsWith(`${name}:`));
      return entry?.[1].breakerState();
    },
  };
}
