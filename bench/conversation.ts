// Issue 19 — what the whole conversation costs the ingest. POSTs of 10 items through `wa.ingest_webhook` on a
// pool: "coexistence" POSTs mixing echoes from the WhatsApp Business app (which pause the bot), reactions to bot
// messages, edits of earlier messages and customer texts, against "plain" POSTs of 10 customer texts (the
// baseline) over the same conversations. The two alternate in rounds of one run, the order flipped every
// round, so both see the same machine. Every wamid must be stored once, no POST may fail, and no deadlock may
// appear (pg_stat_database).
import { echoChange, reaction } from "../local/testing/coexistence-fixtures.ts";
import { clearBuffers } from "../local/testing/processor.ts";
import {
  contact,
  inboundMessage,
  messagesChange,
  newWamid,
  webhook,
} from "../local/testing/whatsapp-fixtures.ts";
import {
  type BenchContext,
  type BenchResult,
  check,
  connect,
  freshPhoneNumberId,
  quantiles,
  result,
  runBounded,
} from "./lib.ts";

const CUSTOMERS = 50;
const CONCURRENCY = 8;
const FULL = { rounds: 8, posts: 100 };
const QUICK = { rounds: 3, posts: 30 };

type Side = "plain" | "coexistence";

interface Conversation {
  customer: string;
  first: string;
  bot: string;
}

const pick = <T>(items: T[], n: number): T[] =>
  Array.from({ length: n }, () => items[Math.floor(Math.random() * items.length)]!);

/** 10 customer texts. */
function plainPost(phoneNumberId: string, conversations: Conversation[]): string {
  const senders = pick(conversations, 10);
  return JSON.stringify(webhook(messagesChange({
    phoneNumberId,
    contacts: senders.map((c) => contact(c.customer)),
    messages: senders.map((c) => inboundMessage("text", { from: c.customer, content: { body: "hola" } })),
  })));
}

/** 2 texts, 3 reactions to bot messages, 2 edits and 3 echoes: 10 items. */
function coexistencePost(phoneNumberId: string, conversations: Conversation[]): string {
  const [a, b, c, d, e, f, g, h, i, j] = pick(conversations, 10) as [Conversation, ...Conversation[]];
  const now = Math.floor(Date.now() / 1000);
  const edit = (x: Conversation) =>
    inboundMessage("edit", {
      from: x.customer,
      content: {
        original_message_id: x.first,
        message: { type: "text", text: { body: `edit ${newWamid()}` } },
      },
    });
  const customers = [a, b, c, d, e, f, g];
  return JSON.stringify(webhook(
    messagesChange({
      phoneNumberId,
      contacts: customers.map((x) => contact(x!.customer)),
      messages: [
        inboundMessage("text", { from: a.customer }),
        inboundMessage("text", { from: b!.customer }),
        reaction(c!.customer, c!.bot, "👍", now),
        reaction(d!.customer, d!.bot, "❤️", now),
        reaction(e!.customer, e!.bot, "🙏", now),
        edit(f!),
        edit(g!),
      ],
    }),
    ...[h, i, j].map((x) => echoChange(x!.customer, { phoneNumberId })),
  ));
}

export async function conversation(ctx: BenchContext): Promise<BenchResult> {
  const plan = ctx.quick ? QUICK : FULL;
  const res = result("conversation", {
    rounds_per_side: plan.rounds,
    posts_per_round: plan.posts,
    items_per_post: 10,
    concurrency: CONCURRENCY,
    customers: CUSTOMERS,
    coexistence_post: "2 texts, 3 reactions, 2 edits, 3 echoes",
  });
  const sql = connect(ctx, CONCURRENCY + 1);
  try {
    await clearBuffers(sql);
    const phoneNumberId = freshPhoneNumberId(6);
    const customers = Array.from(
      { length: CUSTOMERS },
      (_, n) => `6${phoneNumberId.slice(-6)}${String(n).padStart(5, "0")}`,
    );
    const firsts = customers.map(() => newWamid());
    await sql`select wa.ingest_webhook(${
      JSON.stringify(webhook(messagesChange({
        phoneNumberId,
        contacts: customers.map((c) => contact(c)),
        messages: customers.map((from, n) => inboundMessage("text", { from, wamid: firsts[n] })),
      })))
    }::text::jsonb)`;
    await sql`
      insert into public.messages (conversation_id, wamid, direction, type, body, content_text, sent_at, status)
      select c.id, 'wamid.BENCHBOT.' || k.wa_id, 'outbound', 'text', '{"type": "text"}', 'hola', now(), 'sent'
      from public.conversations c join public.contacts k on k.id = c.contact_id
      where c.phone_number_id = ${phoneNumberId}`;
    const conversations = customers.map((customer, n) => ({
      customer,
      first: firsts[n]!,
      bot: `wamid.BENCHBOT.${customer}`,
    }));
    const [before] = await sql<{ deadlocks: number }[]>`
      select deadlocks::integer from pg_stat_database where datname = current_database()`;

    const elapsedMs: Record<Side, number> = { plain: 0, coexistence: 0 };
    const latencies: Record<Side, number[]> = { plain: [], coexistence: [] };
    let failures = 0;
    for (let round = 0; round < plan.rounds; round++) {
      const sides: Side[] = round % 2 === 0 ? ["plain", "coexistence"] : ["coexistence", "plain"];
      for (const side of sides) {
        const bodies = Array.from(
          { length: plan.posts },
          () =>
            side === "plain"
              ? plainPost(phoneNumberId, conversations)
              : coexistencePost(phoneNumberId, conversations),
        );
        const run = await runBounded(bodies.length, CONCURRENCY, async (n) => {
          try {
            await sql`select wa.ingest_webhook(${bodies[n]!}::text::jsonb)`;
          } catch {
            failures++;
          }
        });
        elapsedMs[side] += run.elapsedMs;
        latencies[side].push(...run.latencies);
      }
      await clearBuffers(sql);
    }

    const items = plan.rounds * plan.posts * 10;
    const rate = (side: Side) => items / (elapsedMs[side] / 1000);
    const q = { plain: quantiles(latencies.plain), coexistence: quantiles(latencies.coexistence) };
    res.rows.push(
      {
        metric: `ingest items/s, coexistence mix (${CONCURRENCY} in flight)`,
        value: Math.round(rate("coexistence")),
        unit: "items/s",
        baseline: Math.round(rate("plain")),
        baselineLabel: "plain texts",
      },
      {
        metric: "POST p50 (10 items)",
        value: Number(q.coexistence.p50.toFixed(1)),
        unit: "ms",
        baseline: Number(q.plain.p50.toFixed(1)),
        baselineLabel: "plain texts",
      },
      {
        metric: "POST p99 (10 items)",
        value: Number(q.coexistence.p99.toFixed(1)),
        unit: "ms",
        baseline: Number(q.plain.p99.toFixed(1)),
        baselineLabel: "plain texts",
      },
    );
    const [stored] = await sql<{ messages: number; wamids: number }[]>`
      select count(*)::integer as messages, count(distinct m.wamid)::integer as wamids
      from public.messages m join public.conversations c on c.id = m.conversation_id
      where c.phone_number_id = ${phoneNumberId}`;
    const [after] = await sql<{ deadlocks: number }[]>`
      select deadlocks::integer from pg_stat_database where datname = current_database()`;
    check(res, "failed POSTs", failures, 0);
    check(res, "messages stored twice", stored!.messages - stored!.wamids, 0);
    check(res, "messages stored", stored!.messages, 2 * CUSTOMERS + 2 * items);
    check(res, "deadlocks", after!.deadlocks - before!.deadlocks, 0);
    res.samples = { elapsed_ms: elapsedMs, latencies_ms: q };
    return res;
  } finally {
    await sql.end();
  }
}
