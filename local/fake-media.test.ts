// The fake Graph API's media: any id resolves to the same bytes every time, through a URL that expires 5 minutes
// later on the fake's clock; ids and URLs can be expired on demand; a stalled download waits for release().
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { startFakeGraph } from "./fake-graph.ts";

const TOKEN = "fake-media-test-token";

Deno.test("fake media: any id resolves (Meta's shape) to deterministic bytes via a 5-minute URL", async () => {
  let now = Date.UTC(2026, 0, 1);
  const graph = await startFakeGraph({ accessToken: TOKEN, clock: () => now });
  const auth = { authorization: `Bearer ${TOKEN}` };
  try {
    const resolve = async (id: string) => {
      const res = await fetch(`${graph.url}/v25.0/${id}?phone_number_id=1`, { headers: auth });
      assert.equal(res.status, 200);
      return await res.json();
    };
    const first = await resolve("777001");
    assert.deepEqual(Object.keys(first).sort(), [
      "file_size",
      "id",
      "messaging_product",
      "mime_type",
      "sha256",
      "url",
    ]);
    const bytes = new Uint8Array(await (await fetch(first.url, { headers: auth })).arrayBuffer());
    assert.equal(bytes.length, first.file_size);
    assert.equal(createHash("sha256").update(bytes).digest("hex"), first.sha256);
    assert.deepEqual(await resolve("777001").then((again) => [again.sha256, again.mime_type]), [
      first.sha256,
      first.mime_type,
    ]);
    assert.equal((await fetch(first.url)).status, 401, "the download needs the token");

    now += 5 * 60 * 1000 + 1;
    const expired = await fetch(first.url, { headers: auth });
    assert.equal(expired.status, 404, "5 minutes later the URL is gone");
    await expired.body?.cancel();
    const fresh = await resolve("777001");
    const again = await fetch(fresh.url, { headers: auth });
    assert.equal(again.status, 200, "a new resolve gives a new URL");
    await again.body?.cancel();

    graph.media.expireId("777001");
    const gone = await fetch(`${graph.url}/v25.0/777001`, { headers: auth });
    assert.equal(gone.status, 400);
    assert.equal((await gone.json()).error.code, 100);
  } finally {
    await graph.close();
  }
});

Deno.test("fake media: a stalled download sends half, then the rest after release()", async () => {
  const graph = await startFakeGraph({ accessToken: TOKEN });
  const auth = { authorization: `Bearer ${TOKEN}` };
  try {
    await graph.media.register("777002", { mimeType: "application/pdf", size: 1_000_000 });
    graph.media.fail("777002", { kind: "stall" });
    const { url, sha256 } = await (await fetch(`${graph.url}/v25.0/777002`, { headers: auth })).json();
    const res = await fetch(url, { headers: auth });
    const reading = res.arrayBuffer();
    await graph.waitFor(() => graph.media.downloads[0]?.bytes === 500_000);
    assert.equal(graph.media.downloads[0]!.completed, false);
    graph.media.release();
    const bytes = new Uint8Array(await reading);
    assert.equal(createHash("sha256").update(bytes).digest("hex"), sha256);
    assert.equal(graph.media.downloads[0]!.completed, true);
  } finally {
    await graph.close();
  }
});
