// SPEC 8.3 — debounce precision. The local worker (runWorker: LISTEN wa_buffer_due + a timer to the next due
// time) with a 1 s quiet period on a fresh business number; 30 conversations each get one message at
// staggered times; the delay from each buffer's due_at to the fake Graph API receiving its reply. Reference:
// hosted Supabase's pg_cron invocation every 5 s, whose expected delay is 2.5 s on average (uniform 0..5 s).
import postgres from "postgres";
import { runWorker } from "../local/buffer-worker.ts";
import { clearBuffers, processorTestEnv, startFakes } from "../local/testing/processor.ts";
import { contact, inboundMessage, messagesChange, webhook } from "../local/testing/whatsapp-fixtures.ts";
import {
  type BenchContext,
  type BenchResult,
  check,
  mean,
  percentile,
  result,
  type Row,
  sleepMs,
} from "./lib.ts";

const CONVERSATIONS = 30;
const STAGGER_MS = 100;
const QUIET_PERIOD = "1 second";
const CRON_PERIOD_MS = 5_000;

export async function debounce(ctx: BenchContext): Promise<BenchResult> {
  const res = result("debounce");
  const sql = postgres(ctx.dbUrl, { max: 4, onnotice: () => {} });
  const fakes = await startFakes();
  const controller = new AbortController();
  let worker: Promise<void> | undefined;
  try {
    await clearBuffers(sql);
    const phoneNumberId = String(300000000000000 + Math.floor(Math.random() * 1e13));
    await sql`
      insert into wa.phone_numbers (phone_number_id, display_phone_number, buffer_quiet_period)
      values (${phoneNumberId}, '15550001111', ${QUIET_PERIOD}::interval)`;
    const env = processorTestEnv(fakes, { PROCESSOR_CONCURRENCY: "4" });
    worker = runWorker({ env, workerId: "bench-debounce", signal: controller.signal });
    // Let the worker reach its first sleep (nothing is due yet).
    await sleepMs(300);

    const dueAt = new Map<string, number>();
    for (let i = 0; i < CONVERSATIONS; i++) {
      const from = `7${phoneNumberId.slice(-6)}${String(i).padStart(5, "0")}`;
      const payload = webhook(messagesChange({
        phoneNumberId,
        contacts: [contact(from, `Debounce ${i}`)],
        messages: [inboundMessage("text", { from, content: { body: `hola ${i}` } })],
      }));
      await sql`select wa.ingest_webhook(${JSON.stringify(payload)}::text::jsonb)`;
      const [row] = await sql<{ due_ms: number }[]>`
        select extract(epoch from b.due_at) * 1000 as due_ms
        from wa.buffers b
        join public.conversations c on c.id = b.conversation_id
        join public.contacts k on k.id = c.contact_id
        where k.wa_id = ${from} and c.phone_number_id = ${phoneNumberId}`;
      if (row !== undefined) dueAt.set(from, Number(row.due_ms));
      await sleepMs(STAGGER_MS);
    }
    await fakes.graph.waitFor(
      () => fakes.graph.sent.filter((s) => s.phoneNumberId === phoneNumberId).length >= CONVERSATIONS,
      15_000,
    ).catch(() => {});
    const delays: number[] = [];
    const perRecipient = new Map<string, number>();
    for (const sent of fakes.graph.sent) {
      if (sent.phoneNumberId !== phoneNumberId) continue;
      const to = String(sent.body.to).replace(/^\+/, "");
      perRecipient.set(to, (perRecipient.get(to) ?? 0) + 1);
      const due = dueAt.get(to);
      if (due !== undefined && perRecipient.get(to) === 1) delays.push(sent.at.getTime() - due);
    }
    // The agent is called right after the claim and one context query: the closest outside view of the claim.
    const agentDelays: number[] = [];
    for (const request of fakes.agent.requests) {
      const waId = (request.body as { contact?: { wa_id?: string } } | null)?.contact?.wa_id;
      const due = waId === undefined ? undefined : dueAt.get(waId);
      if (due !== undefined) agentDelays.push(request.at.getTime() - due);
    }
    const early = delays.filter((d) => d < 0).length;
    const row = (metric: string, value: number, baseline: number): Row => ({
      metric,
      value,
      unit: "ms",
      baseline,
      baselineLabel: "pg_cron every 5 s (expected)",
    });
    res.rows.push(
      row("due → send p50", percentile(delays, 50), CRON_PERIOD_MS / 2),
      row("due → send p99", percentile(delays, 99), CRON_PERIOD_MS * 0.99),
      row("due → send mean", mean(delays), CRON_PERIOD_MS / 2),
      row("due → send max", Math.max(...delays), CRON_PERIOD_MS),
      row("due → agent call p50", percentile(agentDelays, 50), CRON_PERIOD_MS / 2),
      row("due → agent call p99", percentile(agentDelays, 99), CRON_PERIOD_MS * 0.99),
    );
    check(res, "due buffers recorded", dueAt.size, CONVERSATIONS);
    check(res, "conversations answered", perRecipient.size, CONVERSATIONS);
    check(res, "delays measured", delays.length, CONVERSATIONS);
    check(res, "agent calls", agentDelays.length, CONVERSATIONS);
    check(
      res,
      "conversations answered more than once",
      [...perRecipient.values()].filter((n) => n > 1).length,
      0,
    );
    check(res, "replies sent before their due time", early, 0);
    res.notes.push(
      `${CONVERSATIONS} conversations, one message each, ${STAGGER_MS} ms apart, quiet period ${QUIET_PERIOD}; ` +
        "delay = fake Graph API receipt of the reply minus the buffer's due_at (claim, agent call, reply row " +
        "and send included). The baseline is not measured: a 5 s pg_cron poll implies a delay uniform in " +
        "0..5 s (p50 2.5 s, p99 4.95 s) before the function even starts.",
    );
    res.details = { send_delays_ms: delays, agent_call_delays_ms: agentDelays };
  } finally {
    controller.abort();
    await worker?.catch(() => {});
    await clearBuffers(sql);
    await sql.end();
    await fakes.close();
  }
  return res;
}
