// SPEC 8.4 — thundering herd (seed 000: 2,146 components asking for the same backup info at once). The SDK's
// BackupService against a counting fetch that answers PostgREST-shaped JSON itself (no server: the figure is
// the number of HTTP requests, not their speed), for 2,146 concurrent lookups of one id and of 2,146 distinct
// ids; baseline: a naive client making one supabase.rpc request per lookup. Skipped while client/mod.ts does
// not exist or does not export BackupService.
import { createClient, type SupabaseClient } from "@supabase/supabase-js";
import { type BenchContext, type BenchResult, check, result, sleepMs } from "./lib.ts";

const LOOKUPS = 2_146;
const MAX_BATCH = 100;
/** A pretend network round trip, so concurrent lookups really overlap in flight. */
const LATENCY_MS = 5;
const CLIENT_MODULE = new URL("../client/mod.ts", import.meta.url);

interface BackupServiceLike {
  getBackupInfo(userId: string): Promise<unknown>;
}
type BackupServiceClass = new (
  supabase: SupabaseClient,
  options?: { maxBatch?: number },
) => BackupServiceLike;

function backupRow(userId: string) {
  return {
    user_id: userId,
    backup_id: null,
    has_backup: false,
    backup_name: null,
    backup_phone: null,
    phone: "5215500000000",
    original_phone: null,
  };
}

/** The ids a PostgREST request asks for: an RPC's `user_ids`, or an `in.(...)` filter on a GET. */
async function requestedIds(request: Request): Promise<string[]> {
  const url = new URL(request.url);
  if (request.method === "POST") {
    const body = await request.json().catch(() => ({}));
    const ids = body?.user_ids ?? body?.ids ?? [];
    return Array.isArray(ids) ? ids.map(String) : [];
  }
  for (const value of url.searchParams.values()) {
    const match = /^in\.\((.*)\)$/.exec(value);
    if (match) return (match[1] ?? "").split(",").map((id) => id.replace(/^"|"$/g, "")).filter(Boolean);
  }
  return [];
}

/** A supabase-js client whose every HTTP request is counted and answered here. */
function countingClient(): { supabase: SupabaseClient; requests: () => number } {
  let requests = 0;
  const fetchImpl = async (input: RequestInfo | URL, init?: RequestInit): Promise<Response> => {
    requests++;
    const request = new Request(input, init);
    const ids = await requestedIds(request);
    await sleepMs(LATENCY_MS);
    return new Response(JSON.stringify(ids.map(backupRow)), {
      status: 200,
      headers: {
        "content-type": "application/json; charset=utf-8",
        "content-range": `0-${ids.length - 1}/*`,
      },
    });
  };
  const supabase = createClient("http://127.0.0.1:54321", "bench-anon-key", {
    global: { fetch: fetchImpl },
    auth: { persistSession: false, autoRefreshToken: false, detectSessionInUrl: false },
  });
  return { supabase, requests: () => requests };
}

/** The naive client: one RPC per lookup, as seed 000's components did. */
async function naiveLookup(supabase: SupabaseClient, userId: string): Promise<unknown> {
  const { data, error } = await supabase.rpc("get_backup_info", { user_ids: [userId] });
  if (error) throw new Error(error.message);
  return (data as unknown[])[0] ?? null;
}

interface Scenario {
  requests: number;
  wrong: number;
}

async function scenario(
  ids: string[],
  lookup: (supabase: SupabaseClient) => (id: string) => Promise<unknown>,
) {
  const { supabase, requests } = countingClient();
  const find = lookup(supabase);
  const answers = await Promise.all(ids.map((id) => find(id)));
  const wrong =
    answers.filter((answer, i) => (answer as { user_id?: string } | null)?.user_id !== ids[i]).length;
  return { requests: requests(), wrong } satisfies Scenario;
}

async function loadBackupService(): Promise<BackupServiceClass | string> {
  try {
    await Deno.stat(CLIENT_MODULE);
  } catch {
    return "client/mod.ts does not exist yet";
  }
  // A computed specifier: the module may not exist when the benchmarks are type-checked.
  const specifier = CLIENT_MODULE.href;
  const module = await import(specifier);
  if (typeof module.BackupService !== "function") return "client/mod.ts does not export BackupService";
  return module.BackupService as BackupServiceClass;
}

export async function herd(_ctx: BenchContext): Promise<BenchResult> {
  const res = result("herd", { lookups: LOOKUPS, max_batch: MAX_BATCH, latency_ms: LATENCY_MS });
  const BackupService = await loadBackupService();
  if (typeof BackupService === "string") {
    res.skipped = BackupService;
    return res;
  }
  const one = Array.from({ length: LOOKUPS }, () => "6f1c2f9e-1d5b-4d38-9b1e-2d4f0c1a9e01");
  const distinct = Array.from({ length: LOOKUPS }, () => crypto.randomUUID());
  const batched = (supabase: SupabaseClient) => {
    const service = new BackupService(supabase, { maxBatch: MAX_BATCH });
    return (id: string) => service.getBackupInfo(id);
  };
  const naive = (supabase: SupabaseClient) => (id: string) => naiveLookup(supabase, id);

  const sameId = await scenario(one, batched);
  const sameIdNaive = await scenario(one, naive);
  const distinctIds = await scenario(distinct, batched);
  const distinctNaive = await scenario(distinct, naive);
  const label = "naive client (1 request per lookup)";
  res.rows.push(
    {
      metric: `HTTP requests, ${LOOKUPS} lookups of one id`,
      value: sameId.requests,
      unit: "",
      baseline: sameIdNaive.requests,
      baselineLabel: label,
      target: "1",
    },
    {
      metric: `HTTP requests, ${LOOKUPS} distinct ids`,
      value: distinctIds.requests,
      unit: "",
      baseline: distinctNaive.requests,
      baselineLabel: label,
      target: String(Math.ceil(LOOKUPS / MAX_BATCH)),
    },
  );
  check(res, "requests for one id", sameId.requests, 1);
  check(
    res,
    `requests for distinct ids (maxBatch ${MAX_BATCH})`,
    distinctIds.requests,
    Math.ceil(LOOKUPS / MAX_BATCH),
  );
  check(res, "lookups answered with another id's row (one id)", sameId.wrong, 0);
  check(res, "lookups answered with another id's row (distinct ids)", distinctIds.wrong, 0);
  res.notes.push(
    `BackupService with maxBatch ${MAX_BATCH}; each counted request is answered by the fetch itself after ` +
      `${LATENCY_MS} ms with the rows of the ids it asked for.`,
  );
  res.samples = {
    same_id: sameId,
    same_id_naive: sameIdNaive,
    distinct: distinctIds,
    distinct_naive: distinctNaive,
  };
  return res;
}
