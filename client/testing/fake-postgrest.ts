// Test double for PostgREST's RPC endpoint behind a real supabase-js client: a custom fetch that answers
// /rest/v1/rpc/<fn> and records every request, so tests count HTTP requests exactly.
import { createClient, type SupabaseClient } from "@supabase/supabase-js";

export interface RpcRequest {
  fn: string;
  args: Record<string, unknown>;
  headers: Headers;
}

/** What the fake answers: a JSON body (omitted: no content) and a status (default 200, or 204 without body). */
export interface RpcAnswer {
  status?: number;
  body?: unknown;
}

export function fakePostgrest(answer: (fn: string, args: Record<string, unknown>) => RpcAnswer) {
  const requests: RpcRequest[] = [];
  const fetch: typeof globalThis.fetch = async (input, init) => {
    const request = new Request(input, init);
    const match = new URL(request.url).pathname.match(/^\/rest\/v1\/rpc\/([a-z_]+)$/);
    if (request.method !== "POST" || match === null) {
      return new Response("unexpected request", { status: 599 });
    }
    const args = await request.json() as Record<string, unknown>;
    requests.push({ fn: match[1]!, args, headers: request.headers });
    const { status, body } = answer(match[1]!, args);
    if (body === undefined) return new Response(null, { status: status ?? 204 });
    return Response.json(body, { status: status ?? 200 });
  };
  const supabase: SupabaseClient = createClient("http://127.0.0.1:54321", "anon-key", {
    // A fixed user token: no auth client, no session storage, no timers.
    accessToken: () => Promise.resolve("user-jwt"),
    global: { fetch },
  });
  return { requests, supabase };
}
