// Overlapping deliveries of one wamid on the real database. Each interleaving is forced, never timed: a first
// connection ingests in a transaction it leaves open, a second starts its ingest and is seen waiting on the
// first (pg_blocking_pids), and only then does the first commit.
import assert from "node:assert/strict";
import { testSql } from "../../../local/testing/db.ts";
import {
  contact,
  inboundMessage,
  messagesChange,
  newWamid,
  unavailablePlaceholder,
  webhook,
} from "../../../local/testing/whatsapp-fixtures.ts";
import type { IngestCounts } from "./store.ts";

type Sql = ReturnType<typeof testSql>;

/** Resolves once backend `pid` waits for a lock that backend `holder` holds. */
async function waitUntilBlocked(sql: Sql, pid: number, holder: number): Promise<void> {
  for (let attempt = 0; attempt < 10_000; attempt++) {
    const [row] = await sql<{ blocked: boolean }[]>`
      select ${holder}::int = any (pg_blocking_pids(${pid}::int)) as blocked`;
    if (row?.blocked) return;
  }
  throw new Error(`backend ${pid} never waited for backend ${holder}`);
}

/**
 * Ingests `first` in a transaction left open, starts ingesting `second` on another connection, waits until
 * that one is blocked on the first, then commits the first. Returns both ingests' counts.
 */
async function overlap(sql: Sql, first: unknown, second: unknown): Promise<[IngestCounts, IngestCounts]> {
  const holder = await sql.reserve();
  const waiter = await sql.reserve();
  const ingest = (connection: typeof holder, payload: unknown) =>
    connection<{ counts: IngestCounts }[]>`
      select wa.ingest_webhook(${JSON.stringify(payload)}::text::jsonb) as counts`;
  let open = false;
  try {
    await holder`begin`;
    open = true;
    const [firstRow] = await ingest(holder, first);
    const [holderPid] = await holder<{ pid: number }[]>`select pg_backend_pid() as pid`;
    const [waiterPid] = await waiter<{ pid: number }[]>`select pg_backend_pid() as pid`;
    const pending = ingest(waiter, second).execute();
    await waitUntilBlocked(sql, waiterPid!.pid, holderPid!.pid);
    await holder`commit`;
    open = false;
    const [secondRow] = await pending;
    return [firstRow!.counts, secondRow!.counts];
  } finally {
    if (open) await holder`rollback`;
    holder.release();
    waiter.release();
  }
}

/** A POST carrying one message from the demo contact. */
function delivery(message: Record<string, unknown>) {
  return webhook(messagesChange({ contacts: [contact()], messages: [message] }));
}

/** What the database holds for an inbound wamid. */
async function stored(sql: Sql, wamid: string) {
  const [row] = await sql`
    select m.type, m.content_text,
           (select r.delivery_count from wa.inbound_receipts r where r.wamid = m.wamid) as deliveries,
           (select count(*)::int from wa.buffer_messages bm where bm.message_id = m.id) as buffered
    from public.messages m where m.wamid = ${wamid}`;
  return row;
}

const pick = ({ new: fresh, replaced, duplicate }: IngestCounts) => ({ new: fresh, replaced, duplicate });

Deno.test(
  "placeholder commits first while the real content waits on its receipt: the content replaces it, buffered once",
  async () => {
    const sql = testSql();
    try {
      const wamid = newWamid();
      const [placeholder, real] = await overlap(
        sql,
        delivery(unavailablePlaceholder({ wamid })),
        delivery(inboundMessage("text", { wamid, content: { body: "the real content" } })),
      );
      assert.deepEqual(pick(placeholder), { new: 1, replaced: 0, duplicate: 0 });
      assert.deepEqual(pick(real), { new: 0, replaced: 1, duplicate: 0 });
      assert.deepEqual(await stored(sql, wamid), {
        type: "text",
        content_text: "the real content",
        deliveries: 2,
        buffered: 1,
      });
    } finally {
      await sql.end();
    }
  },
);

Deno.test(
  "real content commits first while the placeholder waits on its receipt: the placeholder overwrites nothing",
  async () => {
    const sql = testSql();
    try {
      const wamid = newWamid();
      const [real, placeholder] = await overlap(
        sql,
        delivery(inboundMessage("text", { wamid, content: { body: "the real content" } })),
        delivery(unavailablePlaceholder({ wamid })),
      );
      assert.deepEqual(pick(real), { new: 1, replaced: 0, duplicate: 0 });
      assert.deepEqual(pick(placeholder), { new: 0, replaced: 0, duplicate: 1 });
      assert.deepEqual(await stored(sql, wamid), {
        type: "text",
        content_text: "the real content",
        deliveries: 2,
        buffered: 1,
      });
    } finally {
      await sql.end();
    }
  },
);

Deno.test(
  "two overlapping deliveries of the real content after a placeholder: one replaces, one is a duplicate",
  async () => {
    const sql = testSql();
    try {
      const wamid = newWamid();
      await sql`select wa.ingest_webhook(${
        JSON.stringify(delivery(unavailablePlaceholder({ wamid })))
      }::text::jsonb)`;
      const real = delivery(inboundMessage("text", { wamid, content: { body: "the real content" } }));
      const [first, second] = await overlap(sql, real, real);
      assert.deepEqual(pick(first), { new: 0, replaced: 1, duplicate: 0 });
      assert.deepEqual(pick(second), { new: 0, replaced: 0, duplicate: 1 });
      assert.deepEqual(await stored(sql, wamid), {
        type: "text",
        content_text: "the real content",
        deliveries: 3,
        buffered: 1,
      });
    } finally {
      await sql.end();
    }
  },
);
