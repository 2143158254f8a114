// The agent understands media: a photo reaches it with a signed URL to the stored file, a voice note with its
// transcript (kept on the message for operators); media not fetched within media_wait, or a transcription that
// fails, leave the batch going without them, saying so.
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { type FakeTranscribe, fakeTranscript, startFakeTranscribe } from "../../../local/fake-transcribe.ts";
import { testSql } from "../../../local/testing/db.ts";
import { clearMedia, type MediaRig, mediaWebhook, startMediaRig } from "../../../local/testing/media.ts";
import { clearBuffers, type Fakes, processorTestEnv, startFakes } from "../../../local/testing/processor.ts";
import { createFetcher } from "../media-fetcher/fetcher.ts";
import { createProcessor } from "./processor.ts";

type Sql = ReturnType<typeof testSql>;

interface Rig {
  fakes: Fakes;
  media: MediaRig;
  transcribe: FakeTranscribe;
  sql: Sql;
}

function agentMediaTest(name: string, fn: (rig: Rig) => Promise<void>) {
  Deno.test(name, async () => {
    const rig = {
      fakes: await startFakes(),
      media: await startMediaRig(),
      transcribe: startFakeTranscribe(),
      sql: testSql(8),
    };
    try {
      await clearBuffers(rig.sql);
      await clearMedia(rig.sql);
      await fn(rig);
    } finally {
      await rig.sql.end();
      await Promise.all([rig.fakes.close(), rig.media.close(), rig.transcribe.close()]);
    }
  });
}

function processorEnv(rig: Rig) {
  return processorTestEnv(rig.fakes, {
    SUPABASE_URL: rig.media.supabaseUrl,
    SUPABASE_SERVICE_ROLE_KEY: rig.media.serviceRoleKey,
    TRANSCRIBE_URL: rig.transcribe.url,
  });
}

/** Ingests the webhook as if it arrived a minute ago: its buffer is due by the quiet period and media_wait. */
async function ingestMinuteAgo(sql: Sql, payload: unknown) {
  await sql`select wa.ingest_webhook(${JSON.stringify(payload)}::text::jsonb, now() - interval '1 minute')`;
}

function batchMessages(rig: Rig) {
  return (rig.fakes.agent.requests[0]!.body as {
    batch: { messages: { wamid: string; media?: Record<string, unknown> }[] };
  }).batch.messages;
}

agentMediaTest(
  "a voice note reaches the agent with its transcript, a photo with its signed URL",
  async (rig) => {
    const { payload, mediaIds, wamids } = mediaWebhook([
      { type: "audio", mimeType: "audio/ogg; codecs=opus", voice: true },
      { type: "image", mimeType: "image/jpeg", caption: "¿este?" },
    ]);
    await rig.media.graph.media.register(mediaIds[0]!, { mimeType: "audio/ogg", size: 9000 });
    await rig.media.graph.media.register(mediaIds[1]!, { mimeType: "image/jpeg", size: 50_000 });
    await ingestMinuteAgo(rig.sql, payload);
    assert.deepEqual((await createFetcher(rig.media.env, rig.sql, "m").drain()).outcomes, { stored: 2 });

    const summary = await (await createProcessor(processorEnv(rig), rig.sql, "w")).drain();
    assert.deepEqual(summary.outcomes, { replied: 1 });
    const voice = batchMessages(rig).find((message) => message.wamid === wamids[0]);
    const photo = batchMessages(rig).find((message) => message.wamid === wamids[1]);
    const voicePath = `${wamids[0]!.replaceAll("/", "_")}.ogg`;
    assert.equal(voice!.media?.transcript, fakeTranscript(voicePath, 9000));
    assert.equal(voice!.media?.state, "stored");
    assert.equal(rig.transcribe.requests.length, 1);
    const [stored] = await rig.sql<{ media_transcript: string }[]>`
    select media_transcript from public.messages where wamid = ${wamids[0]!}`;
    assert.equal(
      stored!.media_transcript,
      fakeTranscript(voicePath, 9000),
      "kept on the message for operators",
    );

    assert.equal(photo!.media?.caption, "¿este?");
    assert.equal(photo!.media?.mime_type, "image/jpeg");
    assert.equal(photo!.media?.size, 50_000);
    const url = String(photo!.media?.url);
    assert.match(url, /\/storage\/v1\/object\/sign\/whatsapp-media\/.+\.jpg\?token=/);
    const res = await fetch(url);
    assert.equal(res.status, 200, "the URL works without any other credential");
    const bytes = new Uint8Array(await res.arrayBuffer());
    assert.equal(
      createHash("sha256").update(bytes).digest("hex"),
      (await rig.media.graph.media.describe(mediaIds[1]!)).sha256,
    );
  },
);

agentMediaTest("media not stored within media_wait: the batch goes without, and says so", async (rig) => {
  const { payload } = mediaWebhook([{ type: "image" }]);
  await ingestMinuteAgo(rig.sql, payload);
  const summary = await (await createProcessor(processorEnv(rig), rig.sql, "w")).drain();
  assert.deepEqual(summary.outcomes, { replied: 1 });
  const [photo] = batchMessages(rig);
  assert.equal(photo!.media?.state, "pending");
  assert.match(String(photo!.media?.note), /not fetched in time/);
  assert.equal(photo!.media?.url, undefined);
});

agentMediaTest("a transcription that keeps failing: the batch goes without the transcript", async (rig) => {
  const { payload, mediaIds, wamids } = mediaWebhook([{ type: "audio", mimeType: "audio/ogg", voice: true }]);
  await rig.media.graph.media.register(mediaIds[0]!, { mimeType: "audio/ogg", size: 4000 });
  await ingestMinuteAgo(rig.sql, payload);
  await createFetcher(rig.media.env, rig.sql, "m").drain();
  rig.transcribe.enqueue({ kind: "error", status: 500 }, { kind: "error", status: 500 });
  const summary = await (await createProcessor(processorEnv(rig), rig.sql, "w")).drain();
  assert.deepEqual(summary.outcomes, { replied: 1 });
  assert.equal(rig.transcribe.requests.length, 2, "retried as the agent is");
  const [voice] = batchMessages(rig);
  assert.equal(voice!.media?.state, "stored");
  assert.equal(voice!.media?.transcript, undefined);
  assert.match(String(voice!.media?.url), /\.ogg\?token=/);
  const [row] = await rig.sql<{ media_transcript: string | null }[]>`
    select media_transcript from public.messages where wamid = ${wamids[0]!}`;
  assert.equal(row!.media_transcript, null);
});
