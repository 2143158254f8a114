// Media (issue 18): what fetching costs and whether it streams.
//  1. The ingest: a POST of 100 photos against the same POST of 100 texts, through wa.ingest_webhook
//     alternately, since the jobs are written in the ingest's transaction (the webhook itself fetches nothing).
//  2. Throughput: photos fetched by the media fetcher (resolve, download, sha256, upload to the Storage
//     stand-in, record) against downloading the same files and discarding them (no Storage, no database).
//  3. Memory: the media worker as its own process (local/media-worker.ts) storing ten documents at once
//     (100 MB each; 8 MB in quick mode): its peak resident memory (VmHWM) beside its idle memory and the sizes.
import { localEnvDefaults } from "../local/env.ts";
import { startFakeGraph } from "../local/fake-graph.ts";
import { createStorageServer } from "../local/storage/server.ts";
import { mediaWebhook } from "../local/testing/media.ts";
import { contact, inboundMessage, messagesChange, webhook } from "../local/testing/whatsapp-fixtures.ts";
import { parseEnv } from "../supabase/functions/_shared/env.ts";
import { fetcherEnv } from "../supabase/functions/media-fetcher/config.ts";
import { createFetcher } from "../supabase/functions/media-fetcher/fetcher.ts";
import {
  type BenchContext,
  type BenchResult,
  check,
  connect,
  freshPhoneNumberId,
  percentile,
  result,
  runBounded,
  until,
} from "./lib.ts";

const TOKEN = "bench-whatsapp-access-token";
const MB = 1_000_000;

/** Resident memory of a process in MB: its peak (VmHWM) or its current (VmRSS). */
async function memoryMb(pid: number, field: "VmHWM" | "VmRSS"): Promise<number> {
  const status = await Deno.readTextFile(`/proc/${pid}/status`);
  const kb = Number(new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(status)?.[1] ?? NaN);
  return Math.round(kb / 1024 * 10) / 10;
}

function textPost(count: number): unknown {
  const phoneNumberId = freshPhoneNumberId(3);
  const from = `5215519${String(Math.floor(Math.random() * 1e6)).padStart(6, "0")}`;
  return webhook(messagesChange({
    phoneNumberId,
    contacts: [contact(from, "Bench")],
    messages: Array.from(
      { length: count },
      (_, i) => inboundMessage("text", { from, content: { body: `m ${i}` } }),
    ),
  }));
}

export async function media(ctx: BenchContext): Promise<BenchResult> {
  const posts = ctx.quick ? 5 : 30;
  const photos = ctx.quick ? 40 : 400;
  const photoBytes = ctx.quick ? 100_000 : 200_000;
  const documents = 10;
  const documentBytes = ctx.quick ? 8 * MB : 100 * MB;
  const res = result("media", {
    posts,
    photos,
    photo_bytes: photoBytes,
    documents,
    document_bytes: documentBytes,
  });
  const defaults = await localEnvDefaults();
  const sql = connect(ctx, 12);
  const graph = await startFakeGraph({ accessToken: TOKEN });
  const root = await Deno.makeTempDir({ prefix: "wabase-bench-media-" });
  const storage = createStorageServer({
    dbUrl: ctx.dbUrl,
    jwtSecret: defaults.JWT_SECRET ?? "",
    root,
    fileSizeLimit: 100 * 1024 * 1024,
  });
  const http = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, storage.handle);
  const workerEnv = {
    SUPABASE_DB_URL: ctx.dbUrl,
    SUPABASE_URL: `http://127.0.0.1:${http.addr.port}`,
    SUPABASE_SERVICE_ROLE_KEY: defaults.SUPABASE_SERVICE_ROLE_KEY ?? "",
    WHATSAPP_API_BASE: `${graph.url}/v25.0`,
    WHATSAPP_ACCESS_TOKEN: TOKEN,
    MEDIA_CONCURRENCY: "8",
  };
  try {
    // 1. The ingest, alternating so both meet the same database state.
    const withMedia: number[] = [];
    const textOnly: number[] = [];
    for (let i = 0; i < posts; i++) {
      const photosPost =
        mediaWebhook(Array.from({ length: 100 }, () => ({ type: "image" as const }))).payload;
      for (const [samples, payload] of [[textOnly, textPost(100)], [withMedia, photosPost]] as const) {
        const started = performance.now();
        await sql`select wa.ingest_webhook(${JSON.stringify(payload)}::text::jsonb)`;
        samples.push(performance.now() - started);
      }
    }
    const p50 = (samples: number[]) => Math.round(percentile(samples, 50) * 10) / 10;
    res.rows.push({
      metric: "ingest of 100 photos, p50",
      value: p50(withMedia),
      unit: "ms",
      baseline: p50(textOnly),
      baselineLabel: "100 texts",
      target: "about the same",
    });
    check(res, "the ingest asked the Graph API nothing", graph.received.length, 0);
    await sql`delete from wa.media_jobs`; // the ingest's photos are not the throughput run's

    // 2. Throughput, in this process.
    const { payload, mediaIds } = mediaWebhook(
      Array.from({ length: photos }, () => ({ type: "image" as const })),
    );
    await Promise.all(
      mediaIds.map((id) => graph.media.register(id, { mimeType: "image/jpeg", size: photoBytes })),
    );
    const plain = await runBounded(photos, 8, async (i) => {
      const resolved = await (await graph.media.resolve(mediaIds[i]!)).json() as { url: string };
      const body = await fetch(resolved.url, { headers: { authorization: `Bearer ${TOKEN}` } });
      for await (const _ of body.body!) { /* discard */ }
    });
    await sql`select wa.ingest_webhook(${JSON.stringify(payload)}::text::jsonb)`;
    const started = performance.now();
    const summary = await createFetcher(parseEnv(fetcherEnv, workerEnv), sql, "bench").drain();
    const seconds = (performance.now() - started) / 1000;
    check(res, "photos stored", summary.outcomes.stored ?? 0, photos);
    const rate = (files: number, s: number) => Math.round(files / s * 10) / 10;
    res.rows.push({
      metric: "photos fetched and stored",
      value: rate(photos, seconds),
      unit: "files/s",
      baseline: rate(photos, plain.elapsedMs / 1000),
      baselineLabel: "download only",
    });
    res.rows.push({
      metric: "photo bytes stored",
      value: rate(photos * photoBytes / MB, seconds),
      unit: "MB/s",
      baseline: rate(photos * photoBytes / MB, plain.elapsedMs / 1000),
      baselineLabel: "download only",
    });

    // 3. Memory: ten documents at once in the worker's own process.
    const docs = mediaWebhook(
      Array.from({ length: documents }, () => ({ type: "document" as const, mimeType: "application/pdf" })),
    );
    await Promise.all(
      docs.mediaIds.map((id) =>
        graph.media.register(id, { mimeType: "application/pdf", size: documentBytes })
      ),
    );
    const child = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", new URL("../local/media-worker.ts", import.meta.url).pathname],
      env: { ...workerEnv, MEDIA_CONCURRENCY: String(documents) },
      stdout: "null",
      stderr: "null",
    }).spawn();
    try {
      // Idle: started, connected, nothing to do yet (its first drain finds no job).
      await until("the worker to connect", async () => {
        const [row] = await sql<{ n: number }[]>`
          select count(*)::int as n from pg_stat_activity
          where query ilike 'listen%wa_media_due%' and pid <> pg_backend_pid()`;
        return row!.n > 0;
      }, 30_000);
      const idle = await memoryMb(child.pid, "VmRSS");
      const docStarted = performance.now();
      await sql`select wa.ingest_webhook(${JSON.stringify(docs.payload)}::text::jsonb)`;
      await until(
        "ten documents stored",
        async () => {
          const [row] = await sql<{ n: number }[]>`
          select count(*)::int as n from public.messages where wamid = any (${docs.wamids}) and media_state = 'stored'`;
          return row!.n === documents;
        },
        ctx.quick ? 60_000 : 600_000,
        50,
      );
      const docSeconds = (performance.now() - docStarted) / 1000;
      const peak = await memoryMb(child.pid, "VmHWM");
      res.rows.push({
        metric: `worker peak memory, ${documents} x ${documentBytes / MB} MB documents at once`,
        value: peak,
        unit: "MB",
        baseline: idle,
        baselineLabel: "worker idle",
        target: "flat: far below the files",
      });
      res.rows.push({
        metric: `${documents} documents stored`,
        value: rate(documents * documentBytes / MB, docSeconds),
        unit: "MB/s",
      });
      res.rows.push({ metric: "document size", value: documentBytes / MB, unit: "MB" });
      // Streaming: the files never pass through memory whole. What the worker gains while storing ten at once is
      // the runtime's own (about 100 MB: ten streams' buffers, the heap's growth), the same for 8 MB files as
      // for 100 MB ones; under 150 MB it proves streaming in full mode (the files total 1 GB), while quick mode's
      // 80 MB only smoke-tests the run.
      const limit = 150;
      check(res, `worker memory growth under ${limit} MB`, peak - idle < limit ? 1 : 0, 1);
    } finally {
      child.kill("SIGTERM");
      await child.status;
    }
  } finally {
    await http.shutdown();
    await storage.close();
    await graph.close();
    await sql.end();
    await Deno.remove(root, { recursive: true });
  }
  return res;
}
