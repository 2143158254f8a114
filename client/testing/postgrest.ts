// A real supabase-js client on the local stack's real PostgREST (behind the gateway, against the test
// database) whose fetch records every RPC request, so tests count HTTP requests exactly.
import { createClient } from "@supabase/supabase-js";
import type { TestApi } from "../../local/testing/api.ts";
import type { Database, WabaseClient } from "../types.ts";

export interface RpcRequest {
  fn: string;
  args: Record<string, unknown>;
  headers: Headers;
}

/**
 * A client whose requests carry `token()` as the user's access token (null: the anon key, as a signed-out
 * browser), with no auth client, session storage or timers.
 */
export function recordingClient(api: TestApi, token: () => string | null) {
  const requests: RpcRequest[] = [];
  const fetch: typeof globalThis.fetch = async (input, init) => {
    const request = new Request(input, init);
    const match = new URL(request.url).pathname.match(/^\/rest\/v1\/rpc\/([a-z_]+)$/);
    if (match !== null) {
      requests.push({ fn: match[1]!, args: await request.clone().json(), headers: request.headers });
    }
    return await globalThis.fetch(request);
  };
  const supabase: WabaseClient = createClient<Database>(api.url, api.anonKey, {
    accessToken: () => Promise.resolve(token()),
    global: { fetch },
  });
  return { requests, supabase };
}
