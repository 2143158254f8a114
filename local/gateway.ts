// The local stand-in for Supabase's API gateway (Kong in `supabase start`): one origin with Supabase's paths,
// so `createClient("http://127.0.0.1:54321", anonKey)` works unchanged.
//
//   /rest/v1/*              the real PostgREST                 apikey required
//   /auth/v1/*              the Auth stand-in (local/auth/)     apikey required, except verify/callback/authorize
//   /storage/v1/*           the Storage stand-in                no apikey (public objects are plain links)
//   /realtime/v1/websocket  the Realtime stand-in               apikey required (query parameter)
//   /functions/v1/*         the Edge Functions                  no apikey; verify_jwt as config.toml says
//
// The Authorization header reaching the services follows the CLI's Kong template (supabase/cli
// internal/start/start.go, `BearerToken`): a caller's own JWT passes through; otherwise the apikey becomes the
// bearer, the opaque keys (sb_publishable_…, sb_secret_…) mapped to the anon and service_role JWTs. Missing and
// unknown keys are refused with the hosted gateway's 401 bodies. CORS follows Kong's cors plugin defaults
// (any origin, requested headers echoed); PostgREST adds its own expose-headers (Content-Range).

export type Handler = (req: Request) => Response | Promise<Response>;

/** The project's API keys: the two JWTs and the two opaque keys standing for them. */
export interface ApiKeys {
  anon: string;
  serviceRole: string;
  publishable: string;
  secret: string;
}

export interface GatewayServices {
  /** PostgREST: `path` is below /rest/v1 with the query string. */
  rest: (path: string, init: RequestInit) => Promise<Response>;
  auth: Handler;
  functions: Handler;
  storage: Handler;
  realtime: Handler;
}

const CORS_METHODS = "GET, HEAD, PUT, PATCH, POST, DELETE, OPTIONS";
// Headers a proxy must not forward (RFC 9110 7.6.1), plus the ones fetch recomputes.
const HOP_BY_HOP = ["connection", "keep-alive", "transfer-encoding", "upgrade", "host", "content-length"];
const OPEN_AUTH_PATHS = /^\/auth\/v1\/(verify|callback|authorize)(\/|$)/;

function kongError(status: number, message: string, hint?: string): Response {
  return Response.json(hint === undefined ? { message } : { message, hint }, { status });
}

function gatewayError(status: number, code: string, message: string): Response {
  return Response.json({ error: { code, message } }, { status });
}

/** The apikey a request presents, header first, then the query parameter (as Kong's key-auth reads it). */
function presentedKey(req: Request, url: URL): string | null {
  return req.headers.get("apikey") ?? url.searchParams.get("apikey");
}

export function createGateway(services: GatewayServices, keys: ApiKeys): Handler {
  const known = new Set([keys.anon, keys.serviceRole, keys.publishable, keys.secret]);

  /** The 401 for a missing or unknown key, or null when the key is one of the project's. */
  const refuseKey = (key: string | null): Response | null => {
    if (key === null || key === "") {
      return kongError(
        401,
        "No API key found in request",
        "No `apikey` request header or url param was found.",
      );
    }
    if (!known.has(key)) {
      return kongError(
        401,
        "Invalid API key",
        "Double check your Supabase `anon` or `service_role` API key.",
      );
    }
    return null;
  };

  /** The Authorization header the services see. */
  const bearer = (req: Request, key: string | null): string | null => {
    const given = req.headers.get("authorization");
    if (given !== null && !given.startsWith("Bearer sb_")) return given;
    if (key === keys.secret) return `Bearer ${keys.serviceRole}`;
    if (key === keys.publishable) return `Bearer ${keys.anon}`;
    return key === null ? null : `Bearer ${key}`;
  };

  const forwardedHeaders = (req: Request, key: string | null): Headers => {
    const headers = new Headers(req.headers);
    for (const name of HOP_BY_HOP) headers.delete(name);
    const authorization = bearer(req, key);
    if (authorization === null) headers.delete("authorization");
    else headers.set("authorization", authorization);
    return headers;
  };

  const withCors = (res: Response): Response => {
    const headers = new Headers(res.headers);
    headers.set("access-control-allow-origin", "*");
    return new Response(res.body, { status: res.status, statusText: res.statusText, headers });
  };

  const preflight = (req: Request): Response =>
    new Response(null, {
      status: 200,
      headers: {
        "access-control-allow-origin": "*",
        "access-control-allow-methods": CORS_METHODS,
        "access-control-allow-headers": req.headers.get("access-control-request-headers") ?? "*",
        "access-control-max-age": "3600",
      },
    });

  const body = async (req: Request): Promise<ArrayBuffer | undefined> =>
    req.method === "GET" || req.method === "HEAD" ? undefined : await req.arrayBuffer();

  /** The same request for a mounted service, with the gateway's Authorization. */
  const rebuilt = async (req: Request, url: URL, key: string | null): Promise<Request> =>
    new Request(url, { method: req.method, headers: forwardedHeaders(req, key), body: await body(req) });

  return async (req) => {
    const url = new URL(req.url);
    const path = url.pathname;
    const key = presentedKey(req, url);

    if (path.startsWith("/functions/v1/")) return await services.functions(req);

    const isPreflight = req.method === "OPTIONS" && req.headers.has("access-control-request-method");
    if (path === "/rest/v1" || path.startsWith("/rest/v1/")) {
      if (isPreflight) return preflight(req);
      const refused = refuseKey(key);
      if (refused !== null) return withCors(refused);
      // The key travels as a header: PostgREST would read a query parameter `apikey` as a column filter.
      url.searchParams.delete("apikey");
      const target = (path.slice("/rest/v1".length) || "/") + url.search;
      const res = await services.rest(target, {
        method: req.method,
        headers: forwardedHeaders(req, key),
        body: await body(req),
        redirect: "manual",
      });
      return withCors(res);
    }
    if (path === "/auth/v1" || path.startsWith("/auth/v1/")) {
      if (isPreflight) return preflight(req);
      if (!OPEN_AUTH_PATHS.test(path)) {
        const refused = refuseKey(key);
        if (refused !== null) return withCors(refused);
      }
      return withCors(await services.auth(await rebuilt(req, url, key)));
    }
    if (path.startsWith("/storage/v1/")) {
      if (isPreflight) return preflight(req);
      return withCors(await services.storage(await rebuilt(req, url, key)));
    }
    if (path.startsWith("/realtime/v1/")) {
      const refused = refuseKey(key);
      if (refused !== null) return refused;
      // The original request: a websocket upgrade cannot be re-created.
      return await services.realtime(req);
    }
    return gatewayError(404, "route_not_found", `no route for ${path} (see docs/local-stack.md)`);
  };
}
