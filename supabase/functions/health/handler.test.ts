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

// What parse-prometheus-text-format returns (the package ships no types).
interface PrometheusFamily {
  name: string;
  type: string;
  metrics: { value: string; labels?: Record<string, string> }[];
}
const PROMETHEUS_ACCEPT =
  "application/openmetrics-text;version=1.0.0;q=0.5,text/plain;version=0.0.4;q=0.4,*/*;q=0.1";

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
    // pg_net exists locally too (the stand-in), so the HTTP job is scheduled as on a project.
    const jobs = await sql<{ name: string }[]>`
      select name from wa.jobs
      where not needs_pg_net or to_regprocedure('net.http_post(text,jsonb,jsonb,jsonb,integer)') is not null
      order by name`;
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
    assert.equal(sample("wabase_calls", { figure: "in_progress" }), String(body.metrics.calls.in_progress));
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
    const ready = await (await fetch(`${server.url}health/ready`)).json();
    assert.deepEqual(ready, { status: "ready" }, "without the token readiness says only whether");
    const detailed = await fetch(`${server.url}health/ready`, {
      headers: { authorization: `Bearer ${token}` },
    });
    assert.deepEqual((await detailed.json()).reasons, [], "with it, the reasons too");
  } finally {
    await server.stop();
  }
});

Deno.test("off the local stack, readiness is terse and the figures need HEALTH_TOKEN unless HEALTH_PUBLIC=true", async () => {
  // An unreachable database: its driver error is the kind of text an anonymous caller must not read.
  const closed = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (closed.addr as Deno.NetAddr).port;
  closed.close();
  const hosted = {
    SUPABASE_URL: "https://abcdefghijklmnopqrst.supabase.co",
    SUPABASE_DB_URL: `postgresql://postgres:postgres@127.0.0.1:${port}/postgres`,
  };
  const token = "a-long-enough-health-token";
  const answers = async (env: Record<string, string>, headers: HeadersInit = {}) => {
    const server = await spawnServer(env);
    try {
      // The status and, for a refusal, its code; otherwise the kind of content served.
      const answer = async (path: string) => {
        const res = await fetch(`${server.url}health${path}`, { headers });
        const type = res.headers.get("content-type")?.split(";")[0];
        const refusal = res.status === 401 || res.status === 403;
        return [res.status, refusal ? (await res.json()).error.code : (await res.body?.cancel(), type)];
      };
      const ready = await (await fetch(`${server.url}health/ready`, { headers })).json();
      return { ready, metrics: await answer("/metrics"), status: await answer("/status") };
    } finally {
      await server.stop();
    }
  };

  const closedUp = await answers(hosted);
  assert.deepEqual(closedUp.ready, { status: "not_ready" }, "no reasons, no driver error text");
  assert.deepEqual(closedUp.metrics, [403, "health_token_required"]);
  assert.deepEqual(closedUp.status, [403, "health_token_required"]);

  const withToken = await answers({ ...hosted, HEALTH_TOKEN: token }, { authorization: `Bearer ${token}` });
  assert.deepEqual([withToken.metrics, withToken.status], [[503, "application/json"], [200, "text/html"]]);

  const open = await answers({ ...hosted, HEALTH_PUBLIC: "true" });
  assert.match(open.ready.reasons[0], /^database unreachable: /);
  assert.deepEqual([open.metrics, open.status], [[503, "application/json"], [200, "text/html"]]);
});

Deno.test("readiness reads only its own figures: it answers while the hour's counts are locked", async () => {
  const sql = testSql();
  await clearBuffers(sql);
  const server = await spawnServer({ SUPABASE_DB_URL: testDbUrl() });
  let release = () => {};
  const released = new Promise<void>((resolve) => release = resolve);
  let locked = () => {};
  const isLocked = new Promise<void>((resolve) => locked = resolve);
  // A second connection holds what public.ops_metrics reads (the hour's event counts) until the probe answered.
  const holder = sql.begin(async (tx) => {
    await tx`lock table wa.ops_events in access exclusive mode`;
    locked();
    await released;
  });
  try {
    await isLocked;
    const res = await fetch(`${server.url}health/ready`);
    assert.deepEqual([res.status, (await res.json()).reasons], [200, []]);
  } finally {
    release();
    await holder;
    await server.stop();
    await sql.end();
  }
});

Deno.test("readiness turns 503 once a buffer is overdue past the limit, and 200 once a worker drains it", async () => {
  const sql = testSql();
  const fakes = await startFakes();
  await clearBuffers(sql);
  const server = await spawnServer({ SUPABASE_DB_URL: testDbUrl(), HEALTH_MAX_OVERDUE_SECONDS: "60" });
  const ready = async () => {
    const res = await fetch(`${server.url}health/ready`);
    return { status: res.status, reasons: (await res.json()).reasons as string[] };
  };
  const controller = new AbortController();
  let worker: Promise<void> | undefined;
  try {
    // Due times are set in the data, never waited for (the quiet period is 10 s): due 30 s ago is within the
    // limit, due 90 s ago is not, whatever the speed of the machine.
    await seedDueBuffers(sql, 1, 1, 40);
    assert.deepEqual(await ready(), { status: 200, reasons: [] });
    await seedDueBuffers(sql, 1, 1, 100);
    const notReady = await ready();
    assert.equal(notReady.status, 503);
    assert.equal(notReady.reasons.length, 1);
    assert.match(
      notReady.reasons[0]!,
      /^a buffer has been due for \d+ s \(limit 60 s\): nothing is draining buffers$/,
    );

    let batches = 0;
    let drainedBoth = () => {};
    const bothDrained = new Promise<void>((resolve) => drainedBoth = resolve);
    worker = runWorker({
      env: processorTestEnv(fakes),
      workerId: "health-test",
      signal: controller.signal,
      onDrain: (summary) => {
        batches += summary.batches;
        if (batches === 2) drainedBoth();
      },
    });
    await bothDrained;
    assert.deepEqual(await ready(), { status: 200, reasons: [] });
    assert.equal(Number((await sql`select count(*) as n from wa.buffers`)[0]!.n), 0);
  } finally {
    controller.abort();
    await worker;
    await server.stop();
    await sql.end();
    await fakes.close();
  }
});
