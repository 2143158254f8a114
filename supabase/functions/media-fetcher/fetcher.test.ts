// The media fetcher against the test database, the fake Graph API's media host and the Storage stand-in: every
// file kept once whatever fails on the way, permanent failures recorded with their reason and never retried.
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { loadLocalEnv } from "../../../local/env.ts";
import { testSql } from "../../../local/testing/db.ts";
import {
  clearMedia,
  filesOnDisk,
  type MediaRig,
  mediaWebhook,
  startMediaRig,
} from "../../../local/testing/media.ts";
import { signBody } from "../../../local/testing/whatsapp-fixtures.ts";
import { closeDb } from "../_shared/db.ts";
import { createStorageClient } from "../_shared/storage.ts";
import { MEDIA_BUCKET } from "../_shared/media.ts";
import { createFetcher } from "./fetcher.ts";

await loadLocalEnv();
const { handler: webhookHandler } = await import("../whatsapp-webhook/handler.ts");

type Sql = ReturnType<typeof testSql>;

function mediaTest(name: string, fn: (rig: MediaRig, sql: Sql) => Promise<void>) {
  Deno.test(name, async () => {
    const rig = await startMediaRig();
    const sql = testSql(8);
    try {
      await clearMedia(sql);
      await fn(rig, sql);
    } finally {
      await sql.end();
      await rig.close();
    }
  });
}

async function ingest(sql: Sql, payload: unknown) {
  await sql`select wa.ingest_webhook(${JSON.stringify(payload)}::text::jsonb)`;
}

async function message(sql: Sql, wamid: string) {
  const [row] = await sql<
    {
      id: string;
      media_state: string;
      media_path: string | null;
      media_sha256: string | null;
      media_error: string | null;
    }[]
  >`select id, media_state, media_path, media_sha256, media_error from public.messages where wamid = ${wamid}`;
  return row!;
}

async function objectCount(sql: Sql, path?: string): Promise<number> {
  const [row] = await sql<{ n: number }[]>`
    select count(*)::int as n from storage.objects
    where bucket_id = 'whatsapp-media' and (${path ?? null}::text is null or name = ${path ?? null})`;
  return row!.n;
}

async function sha256Hex(res: Response): Promise<string> {
  const hash = createHash("sha256");
  for await (const chunk of res.body!) hash.update(chunk);
  return hash.digest("hex");
}

mediaTest(
  "100 photos in one POST: the webhook writes 100 jobs and downloads nothing; 100 objects, each sha256 Meta's",
  async (rig, sql) => {
    const { payload, mediaIds, wamids } = mediaWebhook(
      Array.from({ length: 100 }, () => ({ type: "image" })),
    );
    const body = JSON.stringify(payload);
    const res = await webhookHandler(
      new Request("http://local/whatsapp-webhook", {
        method: "POST",
        body,
        headers: {
          "content-type": "application/json",
          "x-hub-signature-256": await signBody(body, Deno.env.get("WHATSAPP_APP_SECRET") ?? ""),
        },
      }),
    );
    assert.equal(res.status, 200);
    await res.body?.cancel();
    await closeDb();
    assert.equal(rig.graph.received.length, 0, "the webhook asked the Graph API nothing");
    const [jobs] = await sql<{ n: number }[]>`select count(*)::int as n from wa.media_jobs`;
    assert.equal(jobs!.n, 100, "one job per photo, committed with the messages");

    const summary = await createFetcher({ ...rig.env, MEDIA_CONCURRENCY: 8 }, sql, "t").drain();
    assert.deepEqual(summary.outcomes, { stored: 100 });
    assert.equal(await objectCount(sql), 100);
    const storage = createStorageClient(rig.supabaseUrl, rig.serviceRoleKey);
    for (const [i, wamid] of wamids.entries()) {
      const row = await message(sql, wamid);
      const declared = await rig.graph.media.describe(mediaIds[i]!);
      assert.equal(row.media_state, "stored");
      assert.equal(row.media_sha256, declared.sha256);
      assert.match(row.media_path ?? "", /^[0-9a-f-]{36}\/wamid\.[^/]+\.(jpg|png|ogg|pdf|mp4)$/);
      if (i % 10 === 0) {
        assert.equal(await sha256Hex(await storage.download(MEDIA_BUCKET, row.media_path!)), declared.sha256);
      }
    }
  },
);

mediaTest("a download cut halfway is fetched again: one object, one file on disk", async (rig, sql) => {
  const { payload, mediaIds, wamids } = mediaWebhook([{ type: "document", mimeType: "application/pdf" }]);
  await rig.graph.media.register(mediaIds[0]!, { mimeType: "application/pdf", size: 3 * 1024 * 1024 });
  rig.graph.media.fail(mediaIds[0]!, { kind: "truncate" });
  await ingest(sql, payload);
  const fetcher = createFetcher(rig.env, sql, "t");
  assert.deepEqual((await fetcher.drain()).outcomes, { retry: 1 });
  const [job] = await sql<
    { attempts: number; last_error: string }[]
  >`select attempts, last_error from wa.media_jobs`;
  assert.equal(job!.attempts, 1);
  assert.equal((await message(sql, wamids[0]!)).media_state, "pending");
  assert.equal(await objectCount(sql), 0, "the cut download wrote no object");

  await sql`update wa.media_jobs set run_at = now()`; // its backoff is over
  assert.deepEqual((await fetcher.drain()).outcomes, { stored: 1 });
  const row = await message(sql, wamids[0]!);
  assert.equal(row.media_sha256, (await rig.graph.media.describe(mediaIds[0]!)).sha256);
  assert.equal(await objectCount(sql), 1);
  assert.equal(await filesOnDisk(rig.storageRoot), 1, "the cut upload left no bytes behind");
  assert.deepEqual(rig.graph.media.downloads.map((d) => d.completed), [false, true]);
});

mediaTest("an expired media id: failed with its reason, never tried again", async (rig, sql) => {
  const { payload, mediaIds, wamids } = mediaWebhook([{ type: "audio", mimeType: "audio/ogg", voice: true }]);
  rig.graph.media.expireId(mediaIds[0]!);
  await ingest(sql, payload);
  const fetcher = createFetcher(rig.env, sql, "t");
  assert.deepEqual((await fetcher.drain()).outcomes, { failed: 1 });
  const row = await message(sql, wamids[0]!);
  assert.equal(row.media_state, "failed");
  assert.match(row.media_error ?? "", /media id expired or deleted .*code 100/);
  const [jobs] = await sql<{ n: number }[]>`select count(*)::int as n from wa.media_jobs`;
  assert.equal(jobs!.n, 0, "no job left to retry");
  assert.deepEqual((await fetcher.drain()).outcomes, {});
  assert.equal(rig.graph.media.resolves.get(mediaIds[0]!), 1, "asked Meta once");
});

mediaTest(
  "over WhatsApp's size limit or a mismatching sha256: failed at once, no object",
  async (rig, sql) => {
    const { payload, mediaIds, wamids } = mediaWebhook([{ type: "image" }, { type: "image" }]);
    await rig.graph.media.register(mediaIds[0]!, { mimeType: "image/jpeg", size: 6 * 1024 * 1024 });
    rig.graph.media.fail(mediaIds[1]!, { kind: "corrupt" });
    await ingest(sql, payload);
    assert.deepEqual((await createFetcher(rig.env, sql, "t").drain()).outcomes, { failed: 2 });
    assert.match(
      (await message(sql, wamids[0]!)).media_error ?? "",
      /image over WhatsApp's limit of 5242880 bytes/,
    );
    assert.match((await message(sql, wamids[1]!)).media_error ?? "", /sha256 mismatch/);
    assert.equal(rig.graph.media.downloads.filter((d) => d.id === mediaIds[0]).length, 0, "never downloaded");
    assert.equal(await objectCount(sql), 0);
    assert.equal(await filesOnDisk(rig.storageRoot), 0);
  },
);

mediaTest(
  "an expired download URL or a 500 backs off, then the id is resolved afresh and stored",
  async (rig, sql) => {
    const { payload, mediaIds, wamids } = mediaWebhook([{ type: "video", mimeType: "video/mp4" }]);
    rig.graph.media.fail(mediaIds[0]!, { kind: "expire_url" }, { kind: "error", status: 500 });
    await ingest(sql, payload);
    const fetcher = createFetcher(rig.env, sql, "t");
    for (let attempt = 1; attempt <= 2; attempt++) {
      assert.deepEqual((await fetcher.drain()).outcomes, { retry: 1 });
      const [job] = await sql<{ later: boolean }[]>`select run_at > now() as later from wa.media_jobs`;
      assert.equal(job!.later, true, "backing off");
      await sql`update wa.media_jobs set run_at = now()`;
    }
    assert.deepEqual((await fetcher.drain()).outcomes, { stored: 1 });
    assert.equal((await message(sql, wamids[0]!)).media_state, "stored");
    assert.equal(rig.graph.media.resolves.get(mediaIds[0]!), 3, "a fresh URL each attempt");
  },
);

mediaTest(
  "a worker SIGKILLed mid-download: the job is claimed again when its lease ends, stored once",
  async (rig, sql) => {
    const { payload, mediaIds, wamids } = mediaWebhook([{ type: "document", mimeType: "application/pdf" }]);
    const size = 4 * 1024 * 1024;
    await rig.graph.media.register(mediaIds[0]!, { mimeType: "application/pdf", size });
    rig.graph.media.fail(mediaIds[0]!, { kind: "stall" });
    await ingest(sql, payload);
    const env = {
      ...Deno.env.toObject(),
      SUPABASE_URL: rig.supabaseUrl,
      WHATSAPP_API_BASE: rig.env.WHATSAPP_API_BASE,
      WHATSAPP_ACCESS_TOKEN: rig.env.WHATSAPP_ACCESS_TOKEN,
    };
    const child = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", new URL("../../../local/media-worker.ts", import.meta.url).pathname],
      env,
      stdout: "null",
      stderr: "null",
    }).spawn();
    // Half the file is in flight when the worker dies.
    await rig.graph.waitFor(() => (rig.graph.media.downloads[0]?.bytes ?? 0) >= size / 2, 20_000);
    child.kill("SIGKILL");
    await child.status;
    assert.equal(await objectCount(sql), 0);
    const [held] = await sql<{ leased: boolean; attempts: number }[]>`
    select run_at > now() as leased, attempts from wa.media_jobs`;
    assert.deepEqual(held, { leased: true, attempts: 1 });

    await sql`update wa.media_jobs set run_at = now()`; // the dead worker's lease runs out
    assert.deepEqual((await createFetcher(rig.env, sql, "t").drain()).outcomes, { stored: 1 });
    assert.equal(
      (await message(sql, wamids[0]!)).media_sha256,
      (await rig.graph.media.describe(mediaIds[0]!)).sha256,
    );
    assert.equal(await objectCount(sql), 1);
    // The stand-in drops the dead request's partial file once it sees the body end.
    await rig.graph.waitFor(() => [...Deno.readDirSync(rig.storageRoot)].length === 1, 10_000);
  },
);

mediaTest(
  "two workers never fetch the same job: a claimed job is skipped, not waited for",
  async (_rig, sql) => {
    const { payload } = mediaWebhook([{ type: "image" }, { type: "image" }]);
    await ingest(sql, payload);
    const other = testSql(1);
    try {
      await other.begin(async (tx) => {
        const [first] = await tx<{ message_id: string }[]>`
        select message_id from wa.media_jobs order by run_at, message_id limit 1 for update`;
        const claimed = await sql<
          { message_id: string }[]
        >`select message_id from wa.claim_media_jobs('w2', 5)`;
        assert.equal(claimed.length, 1, "the locked job is skipped");
        assert.notEqual(claimed[0]!.message_id, first!.message_id);
      });
    } finally {
      await other.end();
    }
  },
);

mediaTest(
  "retention: kept by default; past the number's media_retention the object leaves the bucket",
  async (rig, sql) => {
    const { payload, wamids } = mediaWebhook([{ type: "image" }]);
    await ingest(sql, payload);
    const fetcher = createFetcher(rig.env, sql, "t");
    await fetcher.drain();
    const path = (await message(sql, wamids[0]!)).media_path!;
    assert.equal((await fetcher.drain()).removed, 0, "nothing removed by default");
    await sql`update wa.phone_numbers set media_retention = interval '30 days'
            where phone_number_id = (select c.phone_number_id from public.conversations c
                                     join public.messages m on m.conversation_id = c.id where m.wamid = ${wamids[
      0
    ]!})`;
    await sql`update public.messages set received_at = now() - interval '31 days' where wamid = ${wamids[
      0
    ]!}`;
    assert.equal((await fetcher.drain()).removed, 1);
    assert.equal((await message(sql, wamids[0]!)).media_state, "removed");
    assert.equal(await objectCount(sql, path), 0);
    assert.equal(await filesOnDisk(rig.storageRoot), 0);
  },
);
