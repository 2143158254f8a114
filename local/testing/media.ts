// Shared set-up for media tests and the media benchmark: the fake Graph API (with its media host), the Storage
// stand-in on a free port over the test database with its own directory, and the fetcher's configuration.
import type postgres from "postgres";
import { parseEnv } from "../../supabase/functions/_shared/env.ts";
import { type FetcherEnv, fetcherEnv } from "../../supabase/functions/media-fetcher/config.ts";
import { localEnvDefaults } from "../env.ts";
import { type FakeGraph, startFakeGraph } from "../fake-graph.ts";
import { createStorageServer } from "../storage/server.ts";
import { testDbUrl } from "./db.ts";
import { contact, inboundMessage, messagesChange, webhook } from "./whatsapp-fixtures.ts";

export const MEDIA_TEST_TOKEN = "test-whatsapp-access-token";

export interface MediaRig {
  graph: FakeGraph;
  /** The Supabase URL whose /storage/v1 is the stand-in. */
  supabaseUrl: string;
  serviceRoleKey: string;
  /** Where the stand-in keeps object bytes, one file per stored version. */
  storageRoot: string;
  env: FetcherEnv;
  close(): Promise<void>;
}

export async function startMediaRig(overrides: Record<string, string> = {}): Promise<MediaRig> {
  const defaults = await localEnvDefaults();
  const graph = await startFakeGraph({ accessToken: MEDIA_TEST_TOKEN });
  const storageRoot = await Deno.makeTempDir({ prefix: "wabase-media-" });
  const storage = createStorageServer({
    dbUrl: testDbUrl(),
    jwtSecret: defaults.JWT_SECRET ?? "",
    root: storageRoot,
    fileSizeLimit: 100 * 1024 * 1024,
  });
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, storage.handle);
  const supabaseUrl = `http://127.0.0.1:${server.addr.port}`;
  const serviceRoleKey = defaults.SUPABASE_SERVICE_ROLE_KEY ?? "";
  const env = parseEnv(fetcherEnv, {
    SUPABASE_DB_URL: testDbUrl(),
    SUPABASE_URL: supabaseUrl,
    SUPABASE_SERVICE_ROLE_KEY: serviceRoleKey,
    WHATSAPP_API_BASE: `${graph.url}/v25.0`,
    WHATSAPP_ACCESS_TOKEN: MEDIA_TEST_TOKEN,
    GRAPH_TIMEOUT_MS: "2000",
    MEDIA_LEASE_SECONDS: "30",
    ...overrides,
  });
  return {
    graph,
    supabaseUrl,
    serviceRoleKey,
    storageRoot,
    env,
    close: async () => {
      graph.media.release();
      await server.shutdown();
      await storage.close();
      await graph.close();
      await Deno.remove(storageRoot, { recursive: true });
    },
  };
}

/** A fresh business number id, so a test's conversations are its own. */
export function freshPhoneNumberId(): string {
  return String(100000000000000 + Math.floor(Math.random() * 1e13));
}

/** A media id like Meta's (digits), unique per call. */
export function newMediaId(): string {
  return String(1_000_000_000_000_000 + Math.floor(Math.random() * 8e15));
}

export interface MediaMessage {
  type: "image" | "audio" | "video" | "document" | "sticker";
  id?: string;
  mimeType?: string;
  caption?: string;
  voice?: boolean;
}

/** One POST from one customer with these media messages; returns it with the media ids used. */
export function mediaWebhook(
  messages: MediaMessage[],
  opts: { phoneNumberId?: string; from?: string } = {},
): { payload: unknown; mediaIds: string[]; wamids: string[] } {
  const from = opts.from ?? `52${String(Math.floor(Math.random() * 1e10)).padStart(10, "0")}`;
  const entries = messages.map((message) => {
    const id = message.id ?? newMediaId();
    const content: Record<string, unknown> = { id, mime_type: message.mimeType ?? "image/jpeg" };
    if (message.caption !== undefined) content.caption = message.caption;
    if (message.voice !== undefined) content.voice = message.voice;
    return { id, message: inboundMessage(message.type, { from, content }) };
  });
  return {
    payload: webhook(messagesChange({
      phoneNumberId: opts.phoneNumberId ?? freshPhoneNumberId(),
      contacts: [contact(from, "Media Customer")],
      messages: entries.map((entry) => entry.message),
    })),
    mediaIds: entries.map((entry) => entry.id),
    wamids: entries.map((entry) => String((entry.message as { id: string }).id)),
  };
}

/** Files the Storage stand-in holds on disk (one per stored version). */
export async function filesOnDisk(root: string): Promise<number> {
  let count = 0;
  for await (const _ of Deno.readDir(root)) count++;
  return count;
}

/** Removes every media job and object row a previous test left (tests share one database). */
export async function clearMedia(sql: postgres.Sql): Promise<void> {
  await sql`delete from wa.media_jobs`;
  await sql.begin(async (tx) => {
    // Storage refuses a direct DELETE on storage.objects unless told this one is meant (local/platform.sql).
    await tx`select set_config('storage.allow_delete_query', 'true', true)`;
    await tx`delete from storage.objects where bucket_id = 'whatsapp-media'`;
  });
}
