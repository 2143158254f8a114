// Concurrent POSTs mixing everything the conversation capability adds (echoes, reactions, edits, revokes) with
// customer messages, statuses and redeliveries, over the same conversations: every one is ingested (no deadlock,
// docs/locking.md), every wamid is stored once, and each message keeps one reaction per reactor.
import assert from "node:assert/strict";
import { echoChange, reaction } from "../../../local/testing/coexistence-fixtures.ts";
import { testSql } from "../../../local/testing/db.ts";
import { isDeadlock } from "../../../local/testing/locks.ts";
import {
  contact,
  inboundMessage,
  messagesChange,
  newWamid,
  statusUpdate,
  webhook,
} from "../../../local/testing/whatsapp-fixtures.ts";
import { ingest } from "./store.ts";

type Json = Record<string, unknown>;

Deno.test("mixed conversation POSTs, 40 at once over 4 conversations: all ingested, nothing twice", async () => {
  const sql = testSql(24);
  try {
    const phoneNumberId = String(200000000000000 + Math.floor(Math.random() * 1e13));
    const customers = ["1", "2", "3", "4"].map((n) => `52155${phoneNumberId.slice(-6)}${n}`);
    const firsts = customers.map(() => newWamid());
    await ingest(
      sql,
      JSON.stringify(webhook(messagesChange({
        phoneNumberId,
        contacts: customers.map((c) => contact(c)),
        messages: customers.map((from, i) => inboundMessage("text", { from, wamid: firsts[i] })),
      }))),
    );
    const bots = await sql<{ wamid: string; customer: string }[]>`
      with bot as (
        insert into public.messages (conversation_id, wamid, direction, type, body, content_text, sent_at, status)
        select c.id, 'wamid.BOT.' || k.wa_id, 'outbound', 'text', '{"type": "text"}', 'hola', now(), 'sent'
        from public.conversations c join public.contacts k on k.id = c.contact_id
        where c.phone_number_id = ${phoneNumberId}
        returning wamid
      )
      select wamid, substr(wamid, 11) as customer from bot`;
    const botOf = new Map(bots.map((b) => [b.customer, b.wamid]));

    const posts: string[] = [];
    for (let i = 0; i < 32; i++) {
      const picked = customers.filter((_, n) => (i + n) % 3 !== 0);
      const messages: Json[] = [];
      for (const [n, from] of picked.entries()) {
        const at = 1767225600 + i * 10 + n;
        messages.push(inboundMessage("text", { from, timestamp: at }));
        messages.push(reaction(from, botOf.get(from)!, ["👍", "❤️", ""][i % 3], at));
        const target = firsts[customers.indexOf(from)]!;
        messages.push(
          i % 5 === 0
            ? inboundMessage("revoke", { from, timestamp: at, content: { original_message_id: target } })
            : inboundMessage("edit", {
              from,
              timestamp: at,
              content: { original_message_id: target, message: { type: "text", text: { body: `v${i}` } } },
            }),
        );
      }
      messages.reverse();
      const changes = [
        messagesChange({
          phoneNumberId,
          contacts: picked.map((c) => contact(c)),
          messages,
          statuses: picked.map((c) => statusUpdate(botOf.get(c)!, i % 2 ? "delivered" : "read")),
        }),
        ...picked.map((to) => echoChange(to, { phoneNumberId, content: { body: `echo ${i}` } })),
      ];
      posts.push(JSON.stringify(webhook(...(i % 2 ? changes : changes.reverse()))));
    }
    // Redeliveries of eight of them, concurrent with their first delivery.
    const deliveries = [...posts, ...posts.slice(0, 8)];
    const outcomes = await Promise.allSettled(deliveries.map((body) => ingest(sql, body)));
    const failures = outcomes.filter((o) => o.status === "rejected").map((o) =>
      (o as PromiseRejectedResult).reason
    );
    assert.deepEqual(failures.filter(isDeadlock), [], "no deadlock");
    assert.deepEqual(failures, []);
    for (const outcome of outcomes) {
      assert.equal((outcome as PromiseFulfilledResult<{ kind: string }>).value.kind, "ingested");
    }
    const [counts] = await sql<{ messages: number; wamids: number; reactions: number }[]>`
      select count(*)::integer as messages, count(distinct m.wamid)::integer as wamids,
             (select count(*)::integer from public.message_reactions r
              where r.message_wamid = any (${bots.map((b) => b.wamid)})) as reactions
      from public.messages m join public.conversations c on c.id = m.conversation_id
      where c.phone_number_id = ${phoneNumberId}`;
    assert.equal(counts!.messages, counts!.wamids, "every wamid stored once");
    // 4 first texts + 4 bot messages + per POST and picked customer: text, reaction, edit or revoke, echo.
    const picks = Array.from({ length: 32 }, (_, i) => customers.filter((_, n) => (i + n) % 3 !== 0).length)
      .reduce((a, b) => a + b, 0);
    assert.equal(counts!.messages, 8 + picks * 4);
    assert.equal(counts!.reactions, 4, "one reaction per bot message and customer");
  } finally {
    await sql.end();
  }
});
