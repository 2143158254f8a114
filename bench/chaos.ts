// Issue 10 §5 — chaos. While customers write (bench/chaos/load.ts) and real worker processes drain, workers
// are SIGKILLed at random and replaced, the demo agent fails 10% of its calls and hangs on 2% (a timeout),
// the fake Graph API fails 10% of sends (transient 500s, and one in ten a permanent rejection that
// dead-letters its batch) and times out on 2% (half never executed, half executed and answered too late: an
// unknown outcome), and Postgres restarts once. Then, once everything is drained, the invariant
// (bench/chaos/invariant.ts) must hold; it prints PASS or FAIL with its counts.
import { localEnvDefaults } from "../local/env.ts";
import type { AgentFault } from "../local/demo-agent.ts";
import type { Fault } from "../local/fake-graph.ts";
import { spawnServer } from "../local/testing/server.ts";
import { clearBuffers } from "../local/testing/processor.ts";
import { installAudit, removeAudit } from "./audit.ts";
import { processorEnvVars, startBenchFakes } from "./fakes.ts";
import { startWorkers } from "./workers.ts";
import { startHosted } from "./hosted.ts";
import { triggerMode } from "../local/trigger.ts";
import { sendLoad } from "./chaos/load.ts";
import { restartPostgres } from "./chaos/postgres.ts";
import { invariantCounts, violations } from "./chaos/invariant.ts";
import {
  type BenchContext,
  type BenchResult,
  check,
  connect,
  freshPhoneNumberId,
  result,
  sleepMs,
  until,
} from "./lib.ts";

const FULL = { seconds: 60, workers: 3, lanes: 6, contacts: 400 };
const QUICK = { seconds: 15, workers: 2, lanes: 3, contacts: 100 };
const KILL_EVERY_MS = [2_000, 6_000];
const WORKER_ENV = {
  PROCESSOR_CONCURRENCY: "4",
  AGENT_TIMEOUT_MS: "1000",
  GRAPH_TIMEOUT_MS: "1000",
  BREAKER_HALF_OPEN_MS: "500",
  // The shortest lease allowed: a killed worker's batch is claimable again 5 s later.
  BUFFER_LEASE_SECONDS: "5",
  // Every reply then quotes its batch, so each send can be matched to its reply row.
  AGENT_FALLBACK_REPLY: "off",
};

function agentFault(): AgentFault | undefined {
  const r = Math.random();
  return r < 0.1 ? { kind: "error", status: 500 } : r < 0.12 ? { kind: "hang" } : undefined;
}

function graphFault(): Fault | undefined {
  const r = Math.random();
  if (r < 0.09) return { kind: "error", status: 500, code: 131000 };
  if (r < 0.1) return { kind: "error", status: 400, code: 131026 };
  if (r < 0.11) return { kind: "hang" };
  if (r < 0.12) return { kind: "accept_then_delay", ms: 3_000 };
  return undefined;
}

export async function chaos(ctx: BenchContext): Promise<BenchResult> {
  const plan = ctx.quick ? QUICK : FULL;
  const mode = triggerMode();
  const res = result(mode === "cron" ? "chaos-cron" : "chaos", {
    ...plan,
    trigger: mode,
    kill_every_ms: KILL_EVERY_MS,
    worker_env: WORKER_ENV,
    agent_faults: "10% HTTP 500, 2% hang",
    graph_faults:
      "9% HTTP 500 code 131000, 1% HTTP 400 code 131026 (permanent), 1% hang, 1% accepted then 3 s",
    postgres_restart: ctx.pgData !== undefined,
    quiet_period: "500 ms",
    max_wait: "2 s",
  });
  const sql = connect(ctx, 4);
  const fakes = await startBenchFakes({ agent: agentFault, graph: graphFault });
  const phoneNumberId = freshPhoneNumberId(4);
  const events: string[] = [];
  const started = performance.now();
  const event = (what: string) =>
    events.push(`${((performance.now() - started) / 1000).toFixed(1)} s: ${what}`);
  try {
    await clearBuffers(sql);
    await installAudit(sql);
    await sql`
      insert into wa.phone_numbers (phone_number_id, display_phone_number, buffer_quiet_period, buffer_max_wait)
      values (${phoneNumberId}, '15550002222', '500 milliseconds', '2 seconds')`;
    const server = await spawnServer({ SUPABASE_DB_URL: ctx.dbUrl });
    // WABASE_TRIGGER=cron: the hosted path instead, its edge runtime the victim (bench/hosted.ts).
    const workers = mode === "cron"
      ? await startHosted(ctx.dbUrl, processorEnvVars(ctx.dbUrl, fakes, WORKER_ENV))
      : startWorkers(plan.workers, processorEnvVars(ctx.dbUrl, fakes, WORKER_ENV));
    let restarted = 0;
    try {
      const loading = sendLoad({
        endpoint: `${server.url}whatsapp-webhook`,
        secret: (await localEnvDefaults()).WHATSAPP_APP_SECRET ?? "",
        phoneNumberId,
        contacts: plan.contacts,
        lanes: plan.lanes,
        durationMs: plan.seconds * 1000,
      });
      // The monkey: kills until the load ends, and one Postgres restart 40% of the way in.
      let loadDone = false;
      const monkey = (async () => {
        const restartAt = performance.now() + plan.seconds * 400;
        while (!loadDone) {
          await sleepMs(KILL_EVERY_MS[0]! + Math.random() * (KILL_EVERY_MS[1]! - KILL_EVERY_MS[0]!));
          if (loadDone) break;
          await workers.killOne();
          event("killed a worker (SIGKILL) and started another");
          if (ctx.pgData !== undefined && restarted === 0 && performance.now() > restartAt) {
            event("restarting Postgres");
            await restartPostgres(ctx.pgData);
            restarted++;
            event("Postgres is back");
          }
        }
      })();
      const load = await loading.finally(() => loadDone = true);
      await monkey;
      event(
        `load done: ${load.deliveries} deliveries, ${load.duplicates} duplicates, ${load.redeliveries} redeliveries`,
      );
      await until(
        "every buffer drained",
        async () => {
          const [row] = await sql<{ n: number }[]>`
          select count(*)::int as n from wa.buffers where phone_number_id = ${phoneNumberId}`;
          return row?.n === 0;
        },
        150_000,
        250,
      );
      event("drained");

      const counts = await invariantCounts(sql, phoneNumberId, load.wamids, fakes.graph.sent);
      const broken = Object.entries(violations(counts)).filter(([, n]) => n !== 0);
      const verdict = broken.length === 0
        ? "PASS"
        : `FAIL (${broken.map(([k, n]) => `${k}=${n}`).join(", ")})`;
      res.notes.unshift(`chaos invariant: ${verdict}; ${JSON.stringify(counts)}`);
      for (const [name, n] of Object.entries(violations(counts))) check(res, `invariant: ${name}`, n, 0);
      check(res, "Postgres restarts", restarted, ctx.pgData === undefined ? 0 : 1);
      res.rows.push(
        { metric: "inbound messages (distinct, stored)", value: counts.inbound_stored, unit: "" },
        {
          metric: "… in exactly one completed batch + in dead letters",
          value: counts.in_one_completed_batch + counts.in_dead_letters,
          unit: `/${counts.inbound_stored}`,
          target: "all",
        },
        {
          metric: "… in no batch, or in two",
          value: counts.in_no_batch + counts.in_two_places,
          unit: "",
          target: "0",
        },
        { metric: "batches completed", value: counts.batches_completed, unit: "" },
        {
          metric: "replies sent (accepted by the Graph API)",
          value: counts.replies_accepted_by_graph,
          unit: "",
          target: "= batches − unknown unsent",
        },
        {
          metric: "send outcome unknown: accepted / never arrived",
          value: counts.unknown_accepted_by_graph,
          unit: `/${counts.unknown_never_arrived}`,
        },
        { metric: "double sends", value: counts.double_sends, unit: "", target: "0" },
        { metric: "batches dead-lettered", value: counts.batches_dead_lettered, unit: "" },
        { metric: "workers SIGKILLed / Postgres restarts", value: workers.kills, unit: `/${restarted}` },
        { metric: "worker exits not caused by a kill", value: workers.unexpectedExits.length, unit: "" },
      );
      res.samples = {
        counts,
        events,
        worker_outcomes: workers.outcomes,
        unexpected_exits: workers.unexpectedExits,
      };
      if (workers.unexpectedExits.length > 0) {
        res.notes.push(
          `workers that exited on their own (replaced): ${workers.unexpectedExits.join(" || ")}`,
        );
      }
    } finally {
      await workers.stop();
      await server.stop();
    }
  } finally {
    await removeAudit(sql);
    await clearBuffers(sql);
    await sql.end();
    await fakes.close();
  }
  res.notes.push(
    "a send whose outcome is unknown (timed out after the request left, or a worker died between the send and " +
      "recording it) is never resent, by design: WhatsApp has no idempotency key, so a resend could be a " +
      "second message to the customer. Such batches complete with the reply marked unknown; the ones the API " +
      "never received are the only batches without a delivered reply.",
    `events: ${events.join("; ")}`,
  );
  return res;
}
