// Realtime delivery on the local stack: from a committed realtime.send to the broadcast in a real
// @supabase/supabase-js channel, through the Realtime stand-in (local/realtime/server.ts) and its private-topic
// authorization. The baseline is the floor under it: a bare LISTEN/NOTIFY round trip on the same database.
// Target (issue 16): delivered within 100 ms locally.
import { createClient } from "@supabase/supabase-js";
import { localEnvDefaults } from "../local/env.ts";
import { createRealtimeServer } from "../local/realtime/server.ts";
import { accessToken, createTeam, createUser } from "../local/testing/auth.ts";
import {
  type BenchContext,
  type BenchResult,
  check,
  connect,
  percentile,
  quantiles,
  result,
  rounded,
} from "./lib.ts";

const TARGET_MS = 100;
/** A broadcast not there after this long counts as lost (and the run goes on). */
const LOST_AFTER_MS = 5_000;

/** Fires, then waits for `arrived`: the time between in ms, or undefined when it never came. */
async function timed(fire: () => Promise<unknown>, arrived: Promise<void>): Promise<number | undefined> {
  const started = performance.now();
  await fire();
  let timer: ReturnType<typeof setTimeout> | undefined;
  const came = await Promise.race([
    arrived.then(() => true),
    new Promise<boolean>((resolve) => timer = setTimeout(() => resolve(false), LOST_AFTER_MS)),
  ]);
  clearTimeout(timer);
  return came ? performance.now() - started : undefined;
}

export async function realtime(ctx: BenchContext): Promise<BenchResult> {
  const messages = ctx.quick ? 50 : 500;
  const res = result("realtime", { messages, target_ms: TARGET_MS });
  const env = await localEnvDefaults();
  const sql = connect(ctx, 2);
  const listener = connect(ctx, 1);
  const server = createRealtimeServer({ dbUrl: ctx.dbUrl, jwtSecret: env.JWT_SECRET ?? "" });
  const http = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (req) => server.handle(req));
  const url = `http://127.0.0.1:${http.addr.port}`;
  try {
    const teamId = await createTeam(sql);
    const coordinator = await createUser(sql, { role: "coordinator", teamId });
    const token = await accessToken(coordinator);
    const supabase = createClient(url, env.SUPABASE_ANON_KEY ?? "", {
      accessToken: () => Promise.resolve(token),
    });
    // supabase-js hands Realtime the accessToken asynchronously after createClient; a join sent before that
    // would carry the anon key, so the token is set before subscribing.
    await supabase.realtime.setAuth(token);
    const waiting = new Map<number, () => void>();
    const channel = supabase.channel(`team:${teamId}`, { config: { private: true } })
      .on("broadcast", { event: "bench" }, ({ payload }) => waiting.get(payload.n as number)?.());
    await new Promise<void>((resolve, reject) =>
      channel.subscribe((status, error) =>
        status === "SUBSCRIBED" ? resolve() : reject(error ?? new Error(`channel ${status}`))
      )
    );
    const arrival = (n: number) => new Promise<void>((resolve) => waiting.set(n, resolve));

    const ours: number[] = [];
    for (let n = 0; n < messages; n++) {
      const ms = await timed(
        () => sql`select realtime.send(${sql.json({ n })}, 'bench', ${`team:${teamId}`}, true)`,
        arrival(n),
      );
      if (ms !== undefined) ours.push(ms);
    }
    const lost = messages - ours.length;

    const floor: number[] = [];
    let notified: (() => void) | undefined;
    await listener.listen("wabase_bench_floor", () => notified?.());
    for (let n = 0; n < messages; n++) {
      const ms = await timed(
        () => sql`select pg_notify('wabase_bench_floor', ${String(n)})`,
        new Promise<void>((resolve) => notified = resolve),
      );
      if (ms !== undefined) floor.push(ms);
    }

    await supabase.removeAllChannels();
    const label = "bare LISTEN/NOTIFY round trip";
    for (const p of [50, 99]) {
      res.rows.push({
        metric: `send → supabase-js broadcast, p${p}`,
        value: percentile(ours, p),
        unit: "ms",
        baseline: percentile(floor, p),
        baselineLabel: label,
        target: `< ${TARGET_MS} ms`,
      });
    }
    check(res, "broadcasts lost", lost, 0);
    check(res, `p99 delivery under ${TARGET_MS} ms`, Number(percentile(ours, 99) < TARGET_MS), 1);
    res.notes.push(
      `${messages} realtime.send rows, one at a time, to a private team topic joined by a coordinator through ` +
        "the real supabase-js; each delivery awaited before the next send.",
    );
    res.samples = { ours: quantiles(ours), floor: quantiles(floor), ours_ms: rounded(ours) };
    return res;
  } finally {
    await server.close();
    await http.shutdown();
    await listener.end();
    await sql.end();
  }
}
