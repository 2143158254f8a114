// Stand-in for pg_net's background worker (local/pg-net/net.sql is its SQL surface): takes the requests
// queued in net.http_request_queue once their transaction has committed (woken by the NOTIFY the queue's
// trigger sends at commit, and every second in case one was missed), sends each asynchronously with its
// timeout, and records the answer in net._http_response as pg_net does (status, content type, headers, body;
// timed_out and error_msg on failure). Like pg_net's worker it deletes a request from the queue when it picks
// it up, so a request is sent at most once.
import postgres from "postgres";

const CHANNEL = "wabase_pg_net";
const BATCH = 200;
const POLL_MS = 1_000;

export interface NetSender {
  /** Requests sent so far (answered or not). */
  readonly sent: number;
  /** Stops taking requests and aborts those in flight. */
  stop(): Promise<void>;
}

interface QueuedRequest {
  id: string;
  method: string;
  url: string;
  headers: Record<string, string>;
  body: string | null;
  timeout_milliseconds: number;
}

export async function startNetSender(dbUrl: string): Promise<NetSender> {
  const sql = postgres(dbUrl, {
    max: 3,
    onnotice: () => {},
    connection: { application_name: "pg_net stand-in" },
  });
  const controller = new AbortController();
  const inFlight = new Set<Promise<void>>();
  let sent = 0;
  let wake = () => {};
  const listener = await sql.listen(CHANNEL, () => wake());

  interface Answer {
    status_code?: number;
    content_type?: string | null;
    headers?: Record<string, string>;
    content?: string;
    timed_out: boolean;
    error_msg?: string;
  }
  const record = (id: string, response: Answer) =>
    sql`
      insert into net._http_response (id, status_code, content_type, headers, content, timed_out, error_msg)
      values (${id}, ${response.status_code ?? null}, ${response.content_type ?? null},
              ${response.headers === undefined ? null : JSON.stringify(response.headers)}::text::jsonb,
              ${response.content ?? null}, ${response.timed_out ?? null}, ${response.error_msg ?? null})`;

  const send = async (request: QueuedRequest) => {
    const timeout = AbortSignal.timeout(request.timeout_milliseconds);
    try {
      const res = await fetch(request.url, {
        method: request.method,
        headers: request.headers,
        body: request.body,
        signal: AbortSignal.any([timeout, controller.signal]),
      });
      const content = await res.text();
      await record(request.id, {
        status_code: res.status,
        content_type: res.headers.get("content-type"),
        headers: Object.fromEntries(res.headers),
        content,
        timed_out: false,
      });
    } catch (error) {
      if (controller.signal.aborted) return;
      await record(request.id, {
        timed_out: timeout.aborted,
        error_msg: timeout.aborted ? `Timeout of ${request.timeout_milliseconds} ms reached` : String(error),
      }).catch(() => {});
    }
  };

  const loop = (async () => {
    while (!controller.signal.aborted) {
      const woken = new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, POLL_MS);
        wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      try {
        const requests = await sql<QueuedRequest[]>`
          delete from net.http_request_queue q
          where q.id in (select id from net.http_request_queue order by id limit ${BATCH} for update skip locked)
          returning q.id::text, q.method, q.url, q.headers, convert_from(q.body, 'UTF8') as body,
                    q.timeout_milliseconds`;
        for (const request of requests) {
          sent++;
          const sending: Promise<void> = send(request).finally(() => inFlight.delete(sending));
          inFlight.add(sending);
        }
        if (requests.length === BATCH) continue;
      } catch {
        // The database restarting: try again at the next wake-up.
      }
      await woken;
    }
  })();

  return {
    get sent() {
      return sent;
    },
    async stop() {
      controller.abort();
      wake();
      await loop;
      await Promise.all(inFlight);
      await listener.unlisten().catch(() => {});
      await sql.end({ timeout: 5 });
    },
  };
}
