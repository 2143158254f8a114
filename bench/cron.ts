// Cron-invocation mode as on hosted Supabase, locally: every 5 seconds the buffer-processor function (served
// by the local functions server) gets the POST pg_net would make, with the service role key, and drains what
// is due. With pg_cron >= 1.5 the tick is a real pg_cron seconds job that NOTIFYs a listener here (pg_net
// itself is not packaged for Debian); older pg_cron (Debian 12 ships 1.4) schedules by the minute only, so
// the tick is a 5 s timer here instead. Either way the function and its drain are the real ones.
import type postgres from "postgres";

const JOB = "wabase-bench-cron-tick";
const CHANNEL = "wabase_bench_cron_tick";
const PERIOD_S = 5;

export interface CronInvoker {
  /** What ticks: "pg_cron" or "timer". */
  source: string;
  /** Status of every invocation answered so far (0: no answer). */
  invocations: number[];
  stop(): Promise<void>;
}

export async function startCronInvoker(
  sql: postgres.Sql,
  functionUrl: string,
  serviceRoleKey: string,
): Promise<CronInvoker> {
  const invocations: number[] = [];
  const inFlight = new Set<Promise<void>>();
  const invoke = () => {
    const call = fetch(functionUrl, {
      method: "POST",
      headers: { authorization: `Bearer ${serviceRoleKey}`, "content-type": "application/json" },
      body: "{}",
    }).then(async (response) => {
      await response.body?.cancel();
      invocations.push(response.status);
    }, () => void invocations.push(0));
    inFlight.add(call);
    void call.finally(() => inFlight.delete(call));
  };
  const [cron] = await sql<
    { seconds: boolean }[]
  >`select coalesce(wa.pg_cron_version() >= array[1, 5], false) as seconds`;
  let stopTicking: () => Promise<void>;
  if (cron?.seconds) {
    const listener = await sql.listen(CHANNEL, invoke);
    await sql`select cron.schedule(${JOB}, ${`${PERIOD_S} seconds`}, ${`select pg_notify('${CHANNEL}', '')`})`;
    stopTicking = async () => {
      await sql`select cron.unschedule(${JOB})`;
      await listener.unlisten();
    };
  } else {
    const timer = setInterval(invoke, PERIOD_S * 1000);
    stopTicking = () => Promise.resolve(clearInterval(timer));
  }
  return {
    source: cron?.seconds ? "pg_cron" : "timer",
    invocations,
    async stop() {
      await stopTicking();
      await Promise.all(inFlight);
    },
  };
}
