// A fake ERP for the agent's tools (seed 002: an inventory lookup over SOAP whose 30 s timeouts hung the
// socket): POST /inventory with {"sku": "..."} answers {"sku", "available", "warehouse"}. Its mode is set
// at any time: ok, slow (answers after a delay), failing (HTTP 500) or hanging (never answers; the request
// ends unanswered when the ERP closes). Every request is counted, so a test can see that an open breaker
// kept one from coming at all.
import { type Http1Handler, isRecord, parseBody, serveHttp1, sleep, untilAborted } from "./fake-graph.ts";

export type ErpMode =
  | { kind: "ok" }
  | { kind: "slow"; ms: number }
  | { kind: "failing"; status: number }
  | { kind: "hanging" };

export interface FakeErp {
  /** The inventory endpoint's URL, e.g. http://127.0.0.1:40123/inventory. */
  url: string;
  /** The SKUs asked for, in arrival order (hung requests included). */
  requests: string[];
  /** Units available per SKU (default 12 for any other). */
  stock: Map<string, number>;
  setMode(mode: ErpMode): void;
  close(): Promise<void>;
}

const DEFAULT_STOCK = 12;

export function startFakeErp(options: { port?: number; hostname?: string } = {}): FakeErp {
  const requests: string[] = [];
  const stock = new Map<string, number>();
  let mode: ErpMode = { kind: "ok" };
  const answer = (sku: string) =>
    Response.json({ sku, available: stock.get(sku) ?? DEFAULT_STOCK, warehouse: "CDMX-1" });

  const handle: Http1Handler = async (req, closing) => {
    if (new URL(req.url).pathname !== "/inventory" || req.method !== "POST") {
      return Response.json({ error: "POST /inventory" }, { status: 404 });
    }
    const body = parseBody(await req.text());
    const sku = isRecord(body) && typeof body.sku === "string" ? body.sku : null;
    if (sku === null) return Response.json({ error: "sku is required" }, { status: 400 });
    requests.push(sku);
    switch (mode.kind) {
      case "ok":
        return answer(sku);
      case "slow":
        return (await sleep(mode.ms, closing)) ? answer(sku) : "drop";
      case "failing":
        return Response.json({ error: "ERP unavailable" }, { status: mode.status });
      case "hanging":
        await untilAborted(closing);
        return "drop";
    }
  };

  const server = serveHttp1({ hostname: options.hostname ?? "127.0.0.1", port: options.port ?? 0 }, handle);
  return {
    url: `${server.url}/inventory`,
    requests,
    stock,
    setMode: (next) => void (mode = next),
    close: server.close,
  };
}
