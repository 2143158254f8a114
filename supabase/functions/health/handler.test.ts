// The health function end to end: the real functions server, the test database, and for readiness the real
// buffer worker with the fake agent and Graph API.
import assert from "node:assert/strict";
import parsePrometheus from "parse-prometheus-text-format";
import { runWorker } from "../../../local/buffer-worker.ts";
import { testDbUrl, testSql } from "../../../local/testing/db.ts";
import {
  clearBuffers,
  processorTestEnv,
  seedDueBuffers,
  startFakes,
} from "../../../local/testing/processor.ts";
import { spawnServer } from "../../../local/testing/server.ts";
import { EXPECTED_MIGRATION } from "./schema.ts";

type Sql = ReturnType<typeof testSql>;
// What parse-prometheus-text-format returns (the package ships no types).
interface PrometheusFamily {
  name: string;
  type: string;
  metrics: { value: string; labels?: Record<string, string> }[];
}
const PROMETHEUS_ACCEPT =
  "application/openmetrics-text;version=1.0.0;q=0.5,text/plain;version=0.0.4;q=0.4,*/*;q=0.1";

/** Polls `probe` until it returns a value (not undefined), or fails after `timeoutMs`. */
async function until<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const value = await probe();
    if (value !== undefined) return value;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`timed out waiting for ${what}`);
}

/** One buffer on a new number, due `dueInSeconds` from now (the quiet period is 10 s); returns its due time. */
async function burstDueIn(sql: Sql, dueInSeconds: number): Promise<number> {
  const { phoneNumberId } = await seedDueBuffers(sql, 1, 1, 10 - dueInSeconds);
  const [row] = await sql<{ due_ms: number }[]>`
    select extract(epoch from due_at) * 1000 as due_ms from wa.buffers where phone_number_id = ${phoneNumberId}`;
  return Number(row!.due_ms);
}

Deno.test("the newest migration is the one readiness expects", async () => {
  const versions: string[] = [];
  for await (const entry of Deno.readDir(new URL("../../migrations/", import.meta.url))) {
    versions.push(entry.name.split("_")[0]!);
  }
  assert.equal(EXPECTED_MIGRATION, versions.sort().at(-1));
});

Deno.test("liveness, readiness and the figures as JSON and as parseable Prometheus text", async () => {
  const sql = testSql();
  await clearBuffers(sql);
  const server = await spawnServer({ SUPABASE_DB_URL: testDbUrl() });
  try {
    const live = await fetch(`${server.url}health`);
    assert.equal(live.status, 200);
    assert.equal((await live.json()).status, "alive");

    const ready = await fetch(`${server.url}health/ready`);
    const readyBody = await ready.json();
    assert.deepEqual([ready.status, readyBody.status, readyBody.reasons], [200, "ready", []]);
    assert.deepEqual(Object.keys(readyBody.checks), [
      "database",
      "migrations",
      "pg_cron",
      "cron_jobs",
      "buffers",
      "circuit_breakers",
    ]);

    const metrics = await fetch(`${server.url}health/metrics`);
    const body = await metrics.json();
    assert.equal(metrics.status, 200);
    assert.equal(body.ready, true);
    assert.equal(body.metrics.migration_version, EXPECTED_MIGRATION);
    const jobs = await sql<{ name: string }[]>`select name from wa.jobs where not needs_pg_net order by name`;
    assert.deepEqual(Object.keys(body.metrics.cron_jobs).sort(), jobs.map((job) => job.name));
    assert.equal(body.metrics.per_minute.claims.length, 60);

    const text = await fetch(`${server.url}health/metrics`, { headers: { accept: PROMETHEUS_ACCEPT } });
    assert.match(text.headers.get("content-type") ?? "", /^text\/plain; version=0\.0\.4/);
    const families: PrometheusFamily[] = parsePrometheus(await text.text());
    const sample = (name: string, labels: Record<string, string> = {}) =>
      families.find((f) => f.name === name)?.metrics.find((m) =>
        Object.entries(labels).every(([k, v]) => m.labels?.[k] === v)
      )?.value;
    assert.equal(sample("wabase_ready"), "1");
    assert.equal(sample("wabase_check_ok", { check: "buffers" }), "1");
    assert.equal(sample("wabase_buffers", { state: "due_now" }), "0");
    assert.equal(sample("wabase_dead_letters"), String(body.metrics.dead_letters));
    assert.ok(families.length >= 10, `${families.length} metric families`);
    for (const family of families) {
      assert.equal(family.type, "GAUGE", family.name);
      for (const m of family.metrics) {
        assert.ok(Number.isFinite(Number(m.value)), `${family.name} ${m.value}`);
      }
    }

    const unknownRoute = await fetch(`${server.url}health/nope`);
    assert.deepEqual([unknownRoute.status, (await unknownRoute.json()).error.code], [404, "not_found"]);
    const post = await fetch(`${server.url}health/ready`, { method: "POST" });
    assert.deepEqual([post.status, post.headers.get("allow")], [405, "GET, HEAD"]);
    await post.body?.cancel();
  } finally {
    await sql.end();
    await server.stop();
  }
});

Deno.test("readiness is 503 with the reason when the database is unreachable; Prometheus still answers", async () => {
  const closed = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (closed.addr as Deno.NetAddr).port;
  closed.close();
  const server = await spawnServer({
    SUPABASE_DB_URL: `postgresql://postgres:postgres@127.0.0.1:${port}/postgres`,
  });
  try {
    const ready = await fetch(`${server.url}health/ready`);
    const body = await ready.json();
    assert.equal(ready.status, 503);
    assert.equal(body.status, "not_ready");
    assert.match(body.reasons[0], /^database unreachable: /);
    const live = await fetch(`${server.url}health`);
    assert.equal(live.status, 200, "liveness does not depend on the database");
    await live.body?.cancel();
    const json = await fetch(`${server.url}health/metrics`);
    assert.deepEqual([json.status, (await json.json()).metrics], [503, null]);
    const text = await fetch(`${server.url}health/metrics`, { headers: { accept: "text/plain" } });
    assert.equal(text.status, 200);
    assert.match(await text.text(), /^wabase_ready 0$/m);
  } finally {
    await server.stop();
  }
});

Deno.test("readiness names an open circuit breaker and a failed cron run; the metrics show both", async () => {
  const sql = testSql();
  await clearBuffers(sql);
  const server = await spawnServer({ SUPABASE_DB_URL: testDbUrl() });
  let runId: string | undefined;
  try {
    await sql`select wa.save_circuit_breaker('graph', 'open', null)`;
    const [run] = await sql<{ runid: string }[]>`
      insert into cron.job_run_details (jobid, database, username, command, status, return_message, start_time,
                                        end_time)
      select jobid, 'postgres', 'postgres', command, 'failed', 'ERROR:  boom', now() + interval '1 hour',
             now() + interval '1 hour'
      from cron.job where jobname = 'wabase-orphan-sweep'
      returning runid::text`;
    runId = run?.runid;
    const res = await fetch(`${server.url}health/ready`);
    const body = await res.json();
    assert.equal(res.status, 503);
    assert.deepEqual(
      Object.entries(body.checks).filter(([, c]) => !(c as { ok: boolean }).ok).map(([n]) => n),
      [
        "cron_jobs",
        "circuit_breakers",
      ],
    );
    assert.match(body.reasons[0], /^cron job wabase-orphan-sweep failed at .*: ERROR: {2}boom$/);
    assert.match(body.reasons[1], /^circuit breaker graph open since /);
    const text = await (await fetch(`${server.url}health/metrics`, { headers: { accept: "text/plain" } }))
      .text();
    assert.match(text, /^wabase_circuit_breaker_open\{breaker="graph"\} 1$/m);
    assert.match(text, /^wabase_cron_job_last_run_ok\{job="wabase-orphan-sweep"\} 0$/m);
    assert.match(text, /^wabase_ready 0$/m);
  } finally {
    if (runId !== undefined) await sql`delete from cron.job_run_details where runid = ${runId}`;
    await clearBuffers(sql);
    await server.stop();
    await sql.end();
  }
});

Deno.test("with HEALTH_TOKEN set, metrics and the status page need it; liveness and readiness do not", async () => {
  const token = "a-long-enough-health-token";
  const server = await spawnServer({ SUPABASE_DB_URL: testDbUrl(), HEALTH_TOKEN: token });
  const status = async (path: string, headers: HeadersInit = {}) => {
    const res = await fetch(`${server.url}health${path}`, { headers });
    await res.body?.cancel();
    return res.status;
  };
  try {
    assert.deepEqual(
      [
        await status("/metrics"),
        await status("/metrics", { authorization: "Bearer wrong-token-of-some-length" }),
        await status("/metrics", { authorization: `Bearer ${token}` }),
        await status("/status"),
        await status(`/status?token=${token}`),
        await status("/ready"),
        await status(""),
      ],
      [401, 401, 200, 401, 200, 200, 200],
    );
  } finally {
    await server.stop();
  }
});

Deno.test("readiness turns 503 once a buffer is overdue with the worker stopped, and 200 after restart", async () => {
  const maxOverdue = 2;
  const sql = testSql();
  const fakes = await startFakes();
  await clearBuffers(sql);
  const server = await spawnServer({
    SUPABASE_DB_URL: testDbUrl(),
    HEALTH_MAX_OVERDUE_SECONDS: String(maxOverdue),
  });
  const ready = async () => {
    const res = await fetch(`${server.url}health/ready`);
    return { status: res.status, reasons: (await res.json()).reasons as string[] };
  };
  const startWorker = () => {
    const controller = new AbortController();
    const drained: number[] = [];
    const done = runWorker({
      env: processorTestEnv(fakes),
      workerId: "health-test",
      signal: controller.signal,
      onDrain: (summary) => drained.push(summary.batches),
    });
    return { drained, stop: async () => (controller.abort(), await done) };
  };
  const buffersLeft = async () => Number((await sql`select count(*) as n from wa.buffers`)[0]!.n);
  try {
    let worker = startWorker();
    await burstDueIn(sql, 0.5);
    await until(
      "the running worker to drain the burst",
      async () => (await buffersLeft()) === 0 || undefined,
    );
    assert.equal((await ready()).status, 200);

    await worker.stop();
    const dueAt = await burstDueIn(sql, 0.5);
    const notReady = await until("readiness to turn 503", async () => {
      const r = await ready();
      return r.status === 503 ? { ...r, at: Date.now() } : undefined;
    });
    const lateBy = (notReady.at - dueAt) / 1000;
    assert.ok(lateBy >= maxOverdue, `503 only after the threshold (${lateBy.toFixed(2)} s after due)`);
    assert.ok(
      lateBy < maxOverdue + 2,
      `503 within the threshold plus polling (${lateBy.toFixed(2)} s after due)`,
    );
    assert.equal(notReady.reasons.length, 1);
    assert.match(
      notReady.reasons[0]!,
      /^a buffer has been due for \d+ s \(limit 2 s\): nothing is draining buffers$/,
    );

    worker = startWorker();
    await until("readiness to return to 200", async () => (await ready()).status === 200 || undefined);
    assert.equal(await buffersLeft(), 0);
    assert.deepEqual(worker.drained, [1]);
    await worker.stop();
  } finally {
    await server.stop();
    await sql.end();
    await fakes.close();
  }
});
