// The Storage stand-in against the real @supabase/supabase-js: buckets made with the service key, objects
// uploaded, downloaded, listed and removed by users whose access the RLS policies on storage.objects decide,
// signed URLs and signed uploads, public buckets and bucket limits.
import assert from "node:assert/strict";
import { createClient, type SupabaseClient } from "@supabase/supabase-js";
import { SignJWT } from "jose";
import type postgres from "postgres";
import { localEnvDefaults } from "../env.ts";
import { accessToken, createUser, type TestUser } from "../testing/auth.ts";
import { testDbUrl, testSql } from "../testing/db.ts";
import { createStorageServer } from "./server.ts";

const env = await localEnvDefaults();
const JWT_SECRET = env.JWT_SECRET ?? "";
const ANON_KEY = env.SUPABASE_ANON_KEY ?? "";
const SERVICE_KEY = env.SUPABASE_SERVICE_ROLE_KEY ?? "";

interface Fixture {
  sql: postgres.Sql;
  url: string;
  root: string;
  /** A private bucket whose policies let a user read and write the folder named after their id. */
  bucket: string;
  alice: TestUser;
  bob: TestUser;
  service: SupabaseClient;
  client(user: TestUser | "anon"): Promise<SupabaseClient>;
}

/** Files under the storage root: one per stored object version. */
async function filesOnDisk(root: string): Promise<number> {
  let count = 0;
  for await (const _ of Deno.readDir(root)) count++;
  return count;
}

async function withStorage(fn: (f: Fixture) => Promise<void>): Promise<void> {
  const sql = testSql();
  const root = await Deno.makeTempDir({ prefix: "wabase-storage-" });
  const server = createStorageServer({ dbUrl: testDbUrl(), jwtSecret: JWT_SECRET, root });
  const http = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (req) => server.handle(req));
  const url = `http://127.0.0.1:${http.addr.port}`;
  const bucket = `test-${crypto.randomUUID().slice(0, 8)}`;
  const client = async (user: TestUser | "anon") => {
    // Without a session supabase-js sends the anon key as the bearer token.
    const token = user === "anon" ? ANON_KEY : await accessToken(user);
    return createClient(url, ANON_KEY, { accessToken: () => Promise.resolve(token) });
  };
  const own = `bucket_id = '${bucket}' and (storage.foldername(name))[1] = (select auth.uid()::text)`;
  const policies = [
    `for select to authenticated using (${own})`,
    `for insert to authenticated with check (${own})`,
    `for update to authenticated using (${own}) with check (${own})`,
    `for delete to authenticated using (${own})`,
  ];
  try {
    for (const [i, policy] of policies.entries()) {
      await sql.unsafe(`create policy "${bucket} ${i}" on storage.objects ${policy}`);
    }
    const service = createClient(url, SERVICE_KEY, { accessToken: () => Promise.resolve(SERVICE_KEY) });
    assert.deepEqual(await service.storage.createBucket(bucket), { data: { name: bucket }, error: null });
    await fn({
      sql,
      url,
      root,
      bucket,
      alice: await createUser(sql),
      bob: await createUser(sql),
      service,
      client,
    });
  } finally {
    for (const i of policies.keys()) {
      await sql.unsafe(`drop policy if exists "${bucket} ${i}" on storage.objects`);
    }
    await sql.begin(async (tx) => {
      await tx`set local storage.allow_delete_query = 'true'`;
      await tx`delete from storage.objects where bucket_id like ${`${bucket}%`}`;
      await tx`delete from storage.buckets where id like ${`${bucket}%`}`;
    });
    await server.close();
    await http.shutdown();
    await sql.end();
    await Deno.remove(root, { recursive: true });
  }
}

const text = (value: string, type = "text/plain") => new Blob([value], { type });

Deno.test("storage: the service key makes buckets; users upload, download, list and remove as RLS allows", async () => {
  await withStorage(async ({ sql, root, bucket, alice, bob, service, client }) => {
    const bucketInfo = await service.storage.getBucket(bucket);
    assert.equal(bucketInfo.data?.id, bucket);
    assert.equal(bucketInfo.data?.public, false);
    const buckets = await service.storage.listBuckets({ search: bucket });
    assert.deepEqual(buckets.data?.map((found) => found.name), [bucket]);
    assert.deepEqual(
      (await (await client(alice)).storage.listBuckets()).data,
      [],
      "no SELECT policy on buckets",
    );
    const a = (await client(alice)).storage.from(bucket);
    const b = (await client(bob)).storage.from(bucket);
    const refused = await (await client(alice)).storage.createBucket(`${bucket}-mine`);
    assert.equal(
      refused.error?.message,
      "new row violates row-level security policy",
      "no policy on buckets",
    );

    const path = `${alice.id}/hello.txt`;
    const uploaded = await a.upload(path, text("hello"));
    assert.equal(uploaded.error, null);
    assert.equal(uploaded.data?.fullPath, `${bucket}/${path}`);
    const [row] = await sql`select id, owner, owner_id, metadata from storage.objects
                            where bucket_id = ${bucket} and name = ${path}`;
    assert.equal(uploaded.data?.id, row!.id);
    assert.equal(row!.owner, alice.id);
    assert.equal(row!.metadata.size, 5);
    assert.equal(row!.metadata.mimetype, "text/plain");

    const intruder = await a.upload(`${bob.id}/planted.txt`, text("x"));
    assert.equal(intruder.error?.message, "new row violates row-level security policy");
    assert.equal((intruder.error as { statusCode?: string }).statusCode, "403");
    const again = await a.upload(path, text("twice"));
    assert.equal(again.error?.message, "The resource already exists");
    assert.equal((again.error as { statusCode?: string }).statusCode, "409");

    assert.equal((await a.upload(path, text("hello again"), { upsert: true })).error, null);
    assert.equal(await (await a.download(path)).data?.text(), "hello again");
    assert.equal(await filesOnDisk(root), 1, "the replaced version's bytes are gone");
    const hidden = await b.download(path);
    assert.equal(hidden.error?.message, "Object not found");
    assert.deepEqual([(await a.exists(path)).data, (await b.exists(path)).data], [true, false]);
    const info = await a.info(path);
    assert.equal(info.data?.size, 11);
    assert.equal(info.data?.contentType, "text/plain");

    await a.upload(`${alice.id}/notes/todo.txt`, text("todo"));
    // A raw body (not a Blob) travels as is, its custom metadata in x-metadata.
    const raw = `${alice.id}/raw.bin`;
    const bytes = new Uint8Array([0, 1, 2, 255]);
    const rawUpload = await a.upload(raw, bytes, {
      contentType: "application/octet-stream",
      metadata: { n: 1 },
    });
    assert.equal(rawUpload.error, null);
    assert.deepEqual(new Uint8Array(await (await a.download(raw)).data!.arrayBuffer()), bytes);
    assert.deepEqual((await a.info(raw)).data?.metadata, { n: 1 });
    const listed = await a.list(alice.id);
    assert.deepEqual(listed.data?.map((o) => [o.name, o.id === null]), [
      ["hello.txt", false],
      ["notes", true],
      ["raw.bin", false],
    ]);
    assert.deepEqual((await a.list()).data?.map((o) => o.name), [alice.id], "RLS hides the other folders");
    assert.deepEqual((await b.list()).data, []);

    assert.deepEqual((await b.remove([path])).data, [], "bob's DELETE policy matches nothing of alice's");
    const removed = await a.remove([path, `${alice.id}/notes/todo.txt`, raw]);
    assert.deepEqual(removed.data?.map((o) => o.name).sort(), [path, `${alice.id}/notes/todo.txt`, raw]);
    assert.equal((await a.download(path)).error?.message, "Object not found");
    assert.equal(await filesOnDisk(root), 0);
    await assert.rejects(
      sql`delete from storage.objects where bucket_id = ${bucket}`,
      /Direct deletion from storage tables is not allowed/,
      "only the Storage API deletes rows, as on hosted",
    );
  });
});

Deno.test("storage: signed URLs (byte ranges too) and signed uploads", async () => {
  await withStorage(async ({ sql, url, bucket, alice, bob, client }) => {
    const a = (await client(alice)).storage.from(bucket);
    const b = (await client(bob)).storage.from(bucket);
    const path = `${alice.id}/photo 1.txt`;
    await a.upload(path, text("pixels"));

    const signed = await a.createSignedUrl(path, 60);
    assert.equal(signed.error, null);
    const got = await fetch(signed.data!.signedUrl);
    assert.equal(got.status, 200);
    assert.equal(await got.text(), "pixels");
    assert.equal(got.headers.get("content-type"), "text/plain");
    // Media players ask for byte ranges.
    const part = await fetch(signed.data!.signedUrl, { headers: { range: "bytes=1-3" } });
    assert.deepEqual([part.status, part.headers.get("content-range"), await part.text()], [
      206,
      "bytes 1-3/6",
      "ixe",
    ]);
    const tail = await fetch(signed.data!.signedUrl, { headers: { range: "bytes=-2" } });
    assert.equal(await tail.text(), "ls");
    const beyond = await fetch(signed.data!.signedUrl, { headers: { range: "bytes=6-" } });
    assert.deepEqual([beyond.status, await beyond.text()], [416, ""]);
    assert.equal((await b.createSignedUrl(path, 60)).error?.message, "Object not found");

    const token = new URL(signed.data!.signedUrl).searchParams.get("token");
    const elsewhere = await fetch(
      `${url}/storage/v1/object/sign/${bucket}/${alice.id}/other.txt?token=${token}`,
    );
    assert.equal(elsewhere.status, 400);
    assert.equal((await elsewhere.json()).code, "InvalidSignature");
    const now = Math.floor(Date.now() / 1000);
    const stale = await new SignJWT({ url: `${bucket}/${path}`, scope: "download" })
      .setProtectedHeader({ alg: "HS256" }).setIssuedAt(now - 120).setExpirationTime(now - 60)
      .sign(new TextEncoder().encode(JWT_SECRET));
    const expired = await fetch(`${url}/storage/v1/object/sign/${bucket}/${encodeURI(path)}?token=${stale}`);
    assert.deepEqual((await expired.json()).code, "ExpiredToken");

    const many = await a.createSignedUrls([path, `${alice.id}/missing.txt`], 60);
    assert.equal(typeof many.data?.[0]?.signedUrl, "string");
    assert.equal(many.data?.[1]?.signedUrl, null);
    assert.equal(many.data?.[1]?.error, "Either the object does not exist or you do not have access to it");

    const target = `${alice.id}/dropped.txt`;
    const ticket = await a.createSignedUploadUrl(target);
    assert.equal(ticket.error, null);
    const anon = (await client("anon")).storage.from(bucket);
    const dropped = await anon.uploadToSignedUrl(target, ticket.data!.token, text("from a link"));
    assert.equal(dropped.error, null);
    assert.equal(dropped.data?.fullPath, `${bucket}/${target}`);
    assert.equal(await (await a.download(target)).data?.text(), "from a link");
    const [row] =
      await sql`select owner from storage.objects where bucket_id = ${bucket} and name = ${target}`;
    assert.equal(row!.owner, alice.id, "the object belongs to whoever signed the upload");
    const reused = await anon.uploadToSignedUrl(target, ticket.data!.token, text("again"));
    assert.equal(reused.error?.message, "The resource already exists", "the ticket was not for an upsert");
    assert.equal(
      (await b.createSignedUploadUrl(`${alice.id}/bob.txt`)).error?.message,
      "new row violates row-level security policy",
    );
  });
});

Deno.test("storage: public buckets, allowed types and size limits, emptying and deleting buckets", async () => {
  await withStorage(async ({ bucket, service, client, alice }) => {
    const name = `${bucket}-public`;
    const made = await service.storage.createBucket(name, {
      public: true,
      allowedMimeTypes: ["image/*"],
      fileSizeLimit: "8B",
    });
    assert.equal(made.error, null);
    const files = service.storage.from(name);
    assert.equal(
      (await files.upload("a.txt", text("words"))).error?.message,
      "mime type text/plain is not supported",
    );
    assert.equal(
      (await files.upload("big.png", text("123456789", "image/png"))).error?.message,
      "The object exceeded the maximum allowed size",
    );
    assert.equal((await files.upload("dot.png", text("1234", "image/png"))).error, null);
    const open = await fetch(files.getPublicUrl("dot.png").data.publicUrl);
    assert.equal(open.status, 200);
    assert.equal(await open.text(), "1234");
    const privateLink = await fetch(
      (await client(alice)).storage.from(bucket).getPublicUrl(`${alice.id}/x.txt`).data.publicUrl,
    );
    assert.equal(
      (await privateLink.json()).message,
      "Bucket not found",
      "a private bucket has no public links",
    );

    assert.equal(
      (await service.storage.deleteBucket(name)).error?.message,
      "The bucket you tried to delete is not empty",
    );
    assert.equal((await service.storage.emptyBucket(name)).error, null);
    assert.equal((await service.storage.deleteBucket(name)).error, null);
    assert.equal((await service.storage.getBucket(name)).error?.message, "Bucket not found");
    const moved = await files.move("a.png", "b.png");
    assert.match(moved.error?.message ?? "", /not supported by the local Storage stand-in/);
  });
});
