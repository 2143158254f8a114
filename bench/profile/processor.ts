// The profile of one processor batch (issue 23): a buffer worker process (bench/profile/processor-worker.ts,
// one lane, as a drain benchmark worker at 0 ms) drains due buffers against the zero-latency fakes, which run
// in this process; its CPU by module and function (V8 inspector), the database's time by statement, the round
// trips (top-level statements) and the HTTP calls per batch.
import { clearBuffers, seedDueBuffers } from "../../local/testing/processor.ts";
import { latency, processorEnvVars, startBenchFakes, unthrottled } from "../fakes.ts";
import { type BenchContext, connect, settle } from "../lib.ts";
import { readLines } from "../workers.ts";
import { cpuProfile, cpuTable, freePort, summarise } from "./cpu.ts";
import { statementCosts, statementTable } from "./statements.ts";
import type { ProfileSection } from "./section.ts";

const workerPath = new URL("./processor-worker.ts", import.meta.url).pathname;
const WARM_UP = 50;

/** The worker process, and a way to make it drain (at most `batches`; 0: all due) and wait for its summary. */
function startWorker(env: Record<string, string>, inspectPort: number) {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", `--inspect=127.0.0.1:${inspectPort}`, workerPath],
    env,
    stdin: "piped",
    stdout: "piped",
    stderr: "null",
  }).spawn();
  const waiting: ((line: Record<string, unknown>) => void)[] = [];
  const read = readLines(child.stdout, (line) => {
    const message = JSON.parse(line);
    if ("ready" in message || "drained" in message) waiting.shift()?.(message);
  });
  const next = () => new Promise<Record<string, unknown>>((resolve) => waiting.push(resolve));
  const input = child.stdin.getWriter();
  const ready = next();
  return {
    ready,
    async drain(batches: number): Promise<{ batches: number }> {
      const answer = next();
      await input.write(new TextEncoder().encode(`${batches}\n`));
      return (await answer).drained as { batches: number };
    },
    async stop() {
      await input.close();
      await child.status;
      await read;
    },
  };
}

export async function profileProcessor(ctx: BenchContext): Promise<ProfileSection> {
  const count = ctx.quick ? 300 : 2_000;
  const fakes = await startBenchFakes(latency(0));
  const admin = connect(ctx, 1);
  const inspectPort = freePort();
  let worker: ReturnType<typeof startWorker> | undefined;
  try {
    await clearBuffers(admin);
    const { phoneNumberId } = await seedDueBuffers(admin, WARM_UP + count);
    await unthrottled(admin, phoneNumberId);
    await settle(ctx);
    const { value, statements } = await statementCosts(ctx, async () => {
      // Started now: its connections carry the tracking setting.
      worker = startWorker(processorEnvVars(ctx.dbUrl, fakes, { PROCESSOR_CONCURRENCY: "1" }), inspectPort);
      await worker.ready;
      await worker.drain(WARM_UP);
      fakes.graph.reset();
      fakes.agent.reset();
      return worker;
    }, (ready) =>
      cpuProfile(inspectPort, async () => {
        const started = performance.now();
        const { batches } = await ready.drain(0);
        return { batches, elapsedMs: performance.now() - started };
      }));
    const { batches, elapsedMs } = value.value;
    const roundTrips = statements.filter((s) => s.topLevel).reduce((sum, s) => sum + s.calls, 0);
    const http = [
      ["agent calls", fakes.agent.requests.length],
      ["Graph API sends", fakes.graph.sent.length],
      ["typing indicators", fakes.graph.typingRequests.length],
    ] as const;
    const markdown = [
      `${batches} batches (one message each) drained by one worker, one lane, 0 ms fakes: ${
        (batches / (elapsedMs / 1000)).toFixed(0)
      } batches/s while profiled; ${(roundTrips / batches).toFixed(2)} round trips (top-level statements) ` +
      `and ${http.map(([what, n]) => `${(n / batches).toFixed(2)} ${what}`).join(", ")} per batch.`,
      "",
      "The worker's CPU (self time, ms per batch):",
      "",
      cpuTable(summarise(value.profile), batches),
      "",
      "The database, per batch (pg_stat_statements, `track = all`; a nested statement's time is inside its " +
      "caller's):",
      "",
      statementTable(statements, batches, 25),
    ];
    return { title: "processor: one batch, 0 ms fakes", markdown: markdown.join("\n"), elapsedMs };
  } finally {
    await worker?.stop();
    await clearBuffers(admin);
    await admin.end();
    await fakes.close();
  }
}
