// Operators send media: a file the frontend uploaded to whatsapp-outbox (under RLS) is checked against
// WhatsApp's types and sizes, uploaded to the Graph API and sent by its media id.
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { accessToken, createTeam, createUser, type TestUser } from "../../../local/testing/auth.ts";
import { testDbUrl, testSql } from "../../../local/testing/db.ts";
import { MEDIA_TEST_TOKEN, type MediaRig, startMediaRig } from "../../../local/testing/media.ts";
import { seedDueBuffers } from "../../../local/testing/processor.ts";
import { spawnServer } from "../../../local/testing/server.ts";

type Sql = ReturnType<typeof testSql>;

function jpeg(size: number): Uint8Array<ArrayBuffer> {
  const bytes = crypto.getRandomValues(new Uint8Array(Math.min(size, 65536)));
  const file = new Uint8Array(size);
  for (let offset = 0; offset < size; offset += bytes.length) {
    file.set(bytes.subarray(0, size - offset), offset);
  }
  file.set([0xff, 0xd8, 0xff, 0xe0]);
  return file;
}

async function upload(
  rig: MediaRig,
  user: TestUser,
  path: string,
  bytes: Uint8Array<ArrayBuffer>,
  type: string,
) {
  const res = await fetch(`${rig.supabaseUrl}/storage/v1/object/whatsapp-outbox/${path}`, {
    method: "POST",
    headers: { authorization: `Bearer ${await accessToken(user)}`, "content-type": type },
    body: bytes,
  });
  return { status: res.status, text: await res.text() };
}

Deno.test("send-message sends a file from whatsapp-outbox by its uploaded media id; refuses what WhatsApp would", async () => {
  const rig = await startMediaRig();
  const sql: Sql = testSql(4);
  const server = await spawnServer({
    SUPABASE_DB_URL: testDbUrl(),
    SUPABASE_URL: rig.supabaseUrl,
    WHATSAPP_API_BASE: `${rig.graph.url}/v25.0`,
    WHATSAPP_ACCESS_TOKEN: MEDIA_TEST_TOKEN,
  });
  try {
    const teamId = await createTeam(sql);
    const owner = await createUser(sql, { teamId });
    const outsider = await createUser(sql, { teamId: await createTeam(sql) });
    const { phoneNumberId } = await seedDueBuffers(sql, 1);
    const [conversation] = await sql<{ id: string }[]>`
      update public.conversations set assigned_executive_id = ${owner.id}, team_id = ${teamId}, last_inbound_at = now()
      where phone_number_id = ${phoneNumberId} returning id`;
    const conversationId = conversation!.id;
    const send = async (user: TestUser, media: Record<string, unknown>, type = "image") => {
      const res = await fetch(`${server.url}send-message`, {
        method: "POST",
        headers: { authorization: `Bearer ${await accessToken(user)}`, "content-type": "application/json" },
        body: JSON.stringify({
          conversation_id: conversationId,
          client_id: crypto.randomUUID(),
          type,
          media,
        }),
      });
      return { status: res.status, body: await res.json() };
    };

    const photo = jpeg(200_000);
    const path = `${conversationId}/catalogo.jpg`;
    assert.equal(
      (await upload(rig, owner, path, photo, "image/jpeg")).status,
      200,
      "she uploads into her conversation",
    );
    // Storage's answer to a row its INSERT policies refuse: HTTP 400 naming row-level security.
    const intruder = await upload(rig, outsider, `${conversationId}/intruso.jpg`, photo, "image/jpeg");
    assert.equal(intruder.status, 400);
    assert.match(intruder.text, /row-level security/, "an outsider cannot upload into it");

    const sent = await send(owner, { path, caption: "Nuestro catálogo" });
    assert.equal(sent.status, 201);
    assert.equal(rig.graph.media.uploads.length, 1);
    const uploaded = rig.graph.media.uploads[0]!;
    assert.equal(uploaded.type, "image/jpeg");
    assert.equal(uploaded.sha256, createHash("sha256").update(photo).digest("hex"), "the file's exact bytes");
    const message = rig.graph.sent.at(-1)!.body;
    assert.deepEqual(message.image, { id: uploaded.id, caption: "Nuestro catálogo" });

    const big = `${conversationId}/grande.jpg`;
    assert.equal((await upload(rig, owner, big, jpeg(6 * 1024 * 1024), "image/jpeg")).status, 200);
    const tooBig = await send(owner, { path: big });
    assert.equal(tooBig.status, 422);
    assert.equal(tooBig.body.error.code, "media_not_allowed");
    assert.match(tooBig.body.error.message, /image is limited to 5242880 bytes by WhatsApp/);

    const wrongType = await send(owner, { path }, "sticker");
    assert.equal(wrongType.status, 422);
    assert.match(wrongType.body.error.message, /sticker must be one of image\/webp/);

    const hidden = await send(outsider, { path });
    assert.equal(hidden.status, 404, "another team's user cannot read the file, so cannot send it");
    assert.equal(hidden.body.error.code, "media_not_found");
    assert.equal(rig.graph.media.uploads.length, 1, "nothing refused reached the Graph API");
  } finally {
    await server.stop();
    await sql.end();
    await rig.close();
  }
});
