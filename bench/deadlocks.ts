// Issue 15 §4 — deadlocks between mixed deliveries. `posts` webhook POSTs (wa.ingest_webhook, one
// transaction each, 48 in flight) mix inbound messages and statuses over overlapping wamid sets: customers
// writing in conversations that exist, or opening conversations on two more business numbers, a few bringing a
// new BSUID, one in ten redelivering an earlier message, and up to 6 statuses each for outbound messages sent
// before, being sent, or about to be. Meanwhile, on connections of their own, operators send (and resend what
// failed) and record the results, and the bot's replies are claimed, written, recorded and completed. A POST
// that fails is redelivered afterwards, as Meta would. Then: pg_stat_database.deadlocks did not move, no
// inbound message or status event was lost or counted twice, every recorded status is applied. Baseline: the
// first 50 POSTs' statuses applied one row at a time in arrival order (no global lock order), 48 in flight
// (every deadlock costs a second of deadlock_timeout, so more would only make the run longer).
import postgres from "postgres";
import { createUser } from "../local/testing/auth.ts";
import { isDeadlock } from "../local/testing/locks.ts";
import { clearBuffers } from "../local/testing/processor.ts";
import { createStore, type Store } from "../supabase/functions/buffer-processor/store.ts";
import {
  contact,
  inboundMessage,
  messagesChange,
  newWamid,
  statusUpdate,
  webhook,
} from "../local/testing/whatsapp-fixtures.ts";
import {
  type BenchContext,
  type BenchResult,
  check,
  freshPhoneNumberId,
  quantiles,
  result,
  rounded,
  runBounded,
  sleepMs,
  until,
} from "./lib.ts";

const FULL = { posts: 1_000, operators: 6, repliers: 3 };
const QUICK = { posts: 200, operators: 6, repliers: 3 };
const IN_FLIGHT = 48;
const CUSTOMERS = 24;
const STATUSES = ["sent", "delivered", "read", "failed"];
/** Sends recorded per conversation before the POSTs start: the statuses' first targets. */
const SENT_BEFORE = 2;
/** Statuses name the last RECENT wamids recorded (as Meta's follow a send within seconds) and the next LOOKAHEAD
 * ones, not recorded yet: some race the send that records them. */
const RECENT = 48;
const LOOKAHEAD = 8;
const REDELIVERY_ATTEMPTS = 5;
const REPLY_STORE = { leaseSeconds: 60, history: 20 };
const BASELINE_POSTS = 50;
/** Every connection of the workload carries it, so the count of deadlocks waits for all of them to end. */
const APPLICATION = "wabase-bench-deadlocks";

type Sql = postgres.Sql;
type Json = Record<string, unknown>;

function pick<T>(items: readonly T[]): T {
  return items[Math.floor(Math.random() * items.length)]!;
}

interface Customer {
  waId: string;
  name: string;
  bsuid: string;
}

/** What one POST carried: checked against the database once every POST has landed. */
interface Post {
  body: string;
  inbound: string[];
  statuses: [wamid: string, status: string][];
}

/** Error counts by caller and SQLSTATE. */
type Errors = Record<string, number>;

function noteError(errors: Errors, caller: string, error: unknown): void {
  const code = (error as { code?: string }).code ?? "non-sql";
  errors[`${caller} ${code}`] = (errors[`${caller} ${code}`] ?? 0) + 1;
}

function deadlockErrors(errors: Errors): number {
  return Object.entries(errors).filter(([key]) => key.endsWith(" 40P01")).reduce((sum, [, n]) => sum + n, 0);
}

/** The generator: customers, numbers, the outbound wamids statuses may name, what was posted. */
class Workload {
  readonly customers: Customer[];
  /** Outbound wamids recorded so far. */
  readonly recorded: string[] = [];
  /** The wamids the next sends will get, in order (the fake Graph API's answers, decided up front). */
  private readonly upcoming: string[] = [];
  private readonly sent: { number: string; customer: Customer; message: Json }[] = [];
  done = false;

  constructor(readonly numbers: [string, string, string]) {
    const tail = numbers[0].slice(-6);
    this.customers = Array.from({ length: CUSTOMERS }, (_, i) => ({
      waId: `7${tail}${String(i).padStart(5, "0")}`,
      name: `Deadlock ${i}`,
      bsuid: `MX.${tail}.${i}.0`,
    }));
  }

  /** The wamid the Graph API returns for the next send. */
  nextOutboundWamid(): string {
    const wamid = this.upcoming.shift() ?? newWamid();
    this.recorded.push(wamid);
    return wamid;
  }

  private statusTarget(): string {
    while (this.upcoming.length < LOOKAHEAD) this.upcoming.push(newWamid());
    return pick([...this.recorded.slice(-RECENT), ...this.upcoming]);
  }

  /** The opening messages: one per customer on the first number, so those conversations exist. */
  opening(): string {
    const messages = this.customers.map((c) => inboundMessage("text", { from: c.waId }));
    return JSON.stringify(webhook(messagesChange({
      phoneNumberId: this.numbers[0],
      contacts: this.customers.map((c) => contact(c.waId, c.name)),
      messages,
    })));
  }

  post(): Post {
    const r = Math.random();
    const number = r < 0.6 ? this.numbers[0] : r < 0.8 ? this.numbers[1] : this.numbers[2];
    const who = new Set(
      Array.from({ length: 1 + Math.floor(Math.random() * 3) }, () => pick(this.customers)),
    );
    const contacts: Json[] = [];
    const messages: Json[] = [];
    for (const customer of who) {
      // A new BSUID (the customer changed number) is attached: an update of a unique key of the contact.
      if (Math.random() < 0.15) customer.bsuid = `${customer.bsuid.replace(/\.\d+$/, "")}.${Date.now()}`;
      contacts.push(contact(customer.waId, customer.name, Math.random() < 0.5 ? customer.bsuid : undefined));
      for (let i = Math.floor(Math.random() * 2); i >= 0; i--) {
        const message = inboundMessage("text", { from: customer.waId });
        messages.push(message);
        this.sent.push({ number, customer, message });
      }
    }
    const statuses = Array.from(
      { length: Math.floor(Math.random() * 7) },
      () => statusUpdate(this.statusTarget(), pick(STATUSES)),
    );
    const changes = [messagesChange({ phoneNumberId: number, contacts, messages, statuses })];
    const inbound = messages.map((m) => String(m.id));
    if (Math.random() < 0.1 && this.sent.length > messages.length) {
      // A redelivery of an earlier message, in a change of its own number.
      const earlier = pick(this.sent.slice(0, -messages.length));
      changes.push(messagesChange({
        phoneNumberId: earlier.number,
        contacts: [contact(earlier.customer.waId, earlier.customer.name)],
        messages: [earlier.message],
      }));
      inbound.push(String(earlier.message.id));
    }
    return {
      body: JSON.stringify(webhook(...changes)),
      inbound,
      statuses: statuses.map((s) => [String(s.id), String(s.status)]),
    };
  }
}

/** Operators on the first number's conversations: new sends (one in ten refused), and resends of failures. */
async function operate(sql: Sql, load: Workload, adminId: string, conversations: string[], errors: Errors) {
  let sends = 0;
  while (!load.done) {
    try {
      const [failed] = Math.random() < 0.3
        ? await sql<{ conversation_id: string; client_id: string }[]>`
            select conversation_id, split_part(idempotency_key, ':', 3) as client_id
            from public.messages
            where status = 'failed' and sent_by = ${adminId} and conversation_id = any(${conversations}::uuid[])
            order by random() limit 1`
        : [];
      const conversationId = failed?.conversation_id ?? pick(conversations);
      const [row] = await sql<{ message_id: string; created: boolean }[]>`
        select message_id, created
        from wa.begin_operator_send(${adminId}, ${conversationId}, ${
        failed?.client_id ?? crypto.randomUUID()
      },
                                    'text', '{"text":{"body":"hola"}}')`;
      if (!row?.created) continue;
      sends++;
      if (failed === undefined && Math.random() < 0.1) {
        await sql`select wa.record_send_result(${row.message_id}, 'failed', null, '{"code":131000}')`;
      } else {
        await sql`select wa.record_send_result(${row.message_id}, 'sent', ${load.nextOutboundWamid()})`;
      }
    } catch (error) {
      noteError(errors, "operator", error);
    }
  }
  return sends;
}

/** The bot, through the processor's own store: claim due buffers, write the reply, record its send, complete. */
async function reply(store: Store, load: Workload, worker: string, errors: Errors) {
  let replies = 0;
  const payload = { messaging_product: "whatsapp", type: "text", text: { body: "ok" } };
  while (!load.done) {
    try {
      const claims = await store.claim(worker, 4);
      // Time passing in the workload: nothing was due.
      if (claims.length === 0) await sleepMs(5);
      for (const claim of claims) {
        const upTo = claim.up_to_seq ?? "0";
        const written = await store.beginReply(claim.fence, upTo, payload);
        if (written.ours) {
          await store.recordSend(written.message_id, "sent", load.nextOutboundWamid());
          replies++;
        }
        await store.complete(claim.fence, upTo);
      }
    } catch (error) {
      noteError(errors, "reply", error);
    }
  }
  return replies;
}

function workloadPool(ctx: BenchContext, max: number): Sql {
  return postgres(ctx.dbUrl, { max, onnotice: () => {}, connection: { application_name: APPLICATION } });
}

async function deadlockCount(sql: Sql): Promise<number> {
  await sql`select pg_stat_clear_snapshot()`;
  const [row] = await sql<{ n: number }[]>`
    select deadlocks::int as n from pg_stat_database where datname = current_database()`;
  return row!.n;
}

/**
 * Deadlocks counted since `before`, once every workload connection has ended (a backend flushes its
 * statistics when it exits) and the count shows at least the deadlocks the callers saw.
 */
async function deadlocksSince(sql: Sql, before: number, seen: number): Promise<number> {
  await until("the workload's connections to end", async () => {
    const [row] = await sql<{ n: number }[]>`
      select count(*)::int as n from pg_stat_activity where application_name = ${APPLICATION}`;
    return row?.n === 0;
  }, 30_000);
  let after = before;
  await until("the deadlock count to show what the callers saw", async () => {
    after = await deadlockCount(sql);
    return after - before >= seen;
  }, 10_000);
  return after - before;
}

interface Landed {
  /** Every POST, in the order it was written (each when its lane was free, so its statuses name the wamids
   * recorded by then and the next ones to be). */
  posts: Post[];
  latencies: number[];
  /** POSTs that failed at first, and those still failing after REDELIVERY_ATTEMPTS. */
  redelivered: number;
  neverStored: number;
  /** Deliveries per inbound wamid and per (wamid, status), of the POSTs that committed. */
  inbound: Map<string, number>;
  statuses: Map<string, number>;
}

async function deliver(sql: Sql, count: number, errors: Errors, load: Workload): Promise<Landed> {
  const landed: Landed = {
    posts: [],
    latencies: [],
    redelivered: 0,
    neverStored: 0,
    inbound: new Map(),
    statuses: new Map(),
  };
  const add = (map: Map<string, number>, key: string) => map.set(key, (map.get(key) ?? 0) + 1);
  const stored = (post: Post) => {
    for (const wamid of post.inbound) add(landed.inbound, wamid);
    for (const [wamid, status] of post.statuses) add(landed.statuses, `${wamid} ${status}`);
  };
  const failed: Post[] = [];
  const run = await runBounded(count, IN_FLIGHT, async () => {
    const post = load.post();
    landed.posts.push(post);
    try {
      await sql`select wa.ingest_webhook(${post.body}::text::jsonb)`;
      stored(post);
    } catch (error) {
      noteError(errors, "webhook", error);
      failed.push(post);
    }
  });
  landed.latencies = run.latencies;
  load.done = true;
  landed.redelivered = failed.length;
  for (const post of failed) {
    let ok = false;
    for (let attempt = 0; attempt < REDELIVERY_ATTEMPTS && !ok; attempt++) {
      ok = await sql`select wa.ingest_webhook(${post.body}::text::jsonb)`.then(() => true, () => false);
    }
    if (ok) stored(post);
    else landed.neverStored++;
  }
  return landed;
}

interface Ledger {
  inboundLost: number;
  inboundDoubled: number;
  statusesLost: number;
  statusesDoubled: number;
  unapplied: number;
}

/** The database against what the committed POSTs carried. */
async function ledger(sql: Sql, landed: Landed, numbers: string[]): Promise<Ledger> {
  const inbound = [...landed.inbound];
  const [messages] = await sql<{ lost: number; doubled: number }[]>`
    with expected as (
      select e.wamid, e.n from jsonb_to_recordset(${
    JSON.stringify(inbound.map(([wamid, n]) => ({ wamid, n })))
  }
                                                  ::text::jsonb) as e (wamid text, n integer)
    ),
    found as (
      select e.wamid, e.n, coalesce(r.delivery_count, 0) as counted,
             (select count(*) from public.messages m where m.wamid = e.wamid) as stored
      from expected e left join wa.inbound_receipts r on r.wamid = e.wamid
    )
    select coalesce(sum(greatest(n - counted, 0) + case when stored = 0 then 1 else 0 end), 0)::int as lost,
           coalesce(sum(greatest(counted - n, 0) + greatest(stored - 1, 0)), 0)::int as doubled
    from found`;
  const statuses = [...landed.statuses].map(([key, n]) => {
    const [wamid, status] = key.split(" ");
    return { wamid, status, n };
  });
  const [events] = await sql<{ lost: number; doubled: number }[]>`
    select coalesce(sum(greatest(e.n - coalesce(s.delivery_count, 0), 0)), 0)::int as lost,
           coalesce(sum(greatest(coalesce(s.delivery_count, 0) - e.n, 0)), 0)::int as doubled
    from jsonb_to_recordset(${
    JSON.stringify(statuses)
  }::text::jsonb) as e (wamid text, status text, n integer)
    left join wa.message_statuses s on s.wamid = e.wamid and s.status = e.status`;
  // An outbound message whose recorded statuses outrank it, or whose recorded failure left no error.
  const [applied] = await sql<{ n: number }[]>`
    select count(*)::int as n
    from public.messages m join public.conversations c on c.id = m.conversation_id
    where c.phone_number_id = any(${numbers}::text[]) and m.direction = 'outbound' and m.wamid is not null
      and (exists (select from wa.message_statuses s
                   where s.wamid = m.wamid and wa.status_rank(s.status) > wa.status_rank(m.status))
           or (m.error is null and exists (select from wa.message_statuses s
                                           where s.wamid = m.wamid and s.status = 'failed')))`;
  return {
    inboundLost: messages!.lost,
    inboundDoubled: messages!.doubled,
    statusesLost: events!.lost,
    statusesDoubled: events!.doubled,
    unapplied: applied!.n,
  };
}

/** The baseline: each POST's statuses as single-row updates in arrival order, one transaction per POST. */
async function naive(
  ctx: BenchContext,
  sql: Sql,
  posts: Post[],
): Promise<{ deadlocks: number; seen: number }> {
  const pool = workloadPool(ctx, IN_FLIGHT);
  const before = await deadlockCount(sql);
  let seen = 0;
  try {
    await runBounded(posts.length, IN_FLIGHT, async (i) => {
      await pool.begin(async (tx) => {
        for (const [wamid, status] of posts[i]!.statuses) {
          await tx`
            update public.messages
            set status = case when wa.status_rank(${status}) > wa.status_rank(status) then ${status} else status end
            where wamid = ${wamid} and direction = 'outbound'`;
        }
      }).catch((error) => {
        if (!isDeadlock(error)) throw error;
        seen++;
      });
    });
  } finally {
    await pool.end();
  }
  return { deadlocks: await deadlocksSince(sql, before, seen), seen };
}

export async function deadlocks(ctx: BenchContext): Promise<BenchResult> {
  const plan = ctx.quick ? QUICK : FULL;
  const res = result("deadlocks", {
    ...plan,
    in_flight: IN_FLIGHT,
    customers: CUSTOMERS,
    statuses_per_post: "0-6",
    new_bsuid_share: 0.15,
    redelivery_share: 0.1,
    path: "wa.ingest_webhook on a pool (the database's part of a POST)",
  });
  const sql = postgres(ctx.dbUrl, { max: 2, onnotice: () => {} });
  const load = new Workload([freshPhoneNumberId(5), freshPhoneNumberId(5), freshPhoneNumberId(5)]);
  const errors: Errors = {};
  try {
    // Quick buffers and no bot pause after an operator's send: replies keep flowing while operators write.
    await sql`
      insert into wa.phone_numbers (phone_number_id, buffer_quiet_period, buffer_max_wait, bot_auto_pause)
      select n, '1 millisecond', '1 millisecond', '0' from unnest(${load.numbers}::text[]) n`;
    await sql`select wa.ingest_webhook(${load.opening()}::text::jsonb)`;
    const admin = await createUser(sql, { role: "admin" });
    const conversations = (await sql<{ id: string }[]>`
      select id from public.conversations where phone_number_id = ${load.numbers[0]}`).map((row) => row.id);
    for (const conversationId of conversations) {
      for (let i = 0; i < SENT_BEFORE; i++) {
        const [row] = await sql<{ message_id: string }[]>`
          select message_id from wa.begin_operator_send(${admin.id}, ${conversationId}, ${crypto.randomUUID()},
                                                        'text', '{"text":{"body":"hola"}}')`;
        await sql`select wa.record_send_result(${row!.message_id}, 'sent', ${load.nextOutboundWamid()})`;
      }
    }

    const before = await deadlockCount(sql);
    const webhookPool = workloadPool(ctx, IN_FLIGHT);
    const operatorPool = workloadPool(ctx, plan.operators);
    const replyPool = workloadPool(ctx, plan.repliers);
    let landed: Landed;
    let sends: number[];
    let replies: number[];
    const started = performance.now();
    try {
      const operators = Array.from(
        { length: plan.operators },
        () => operate(operatorPool, load, admin.id, conversations, errors),
      );
      const bots = Array.from(
        { length: plan.repliers },
        (_, i) => reply(createStore(replyPool, REPLY_STORE), load, `bench-deadlocks-${i}`, errors),
      );
      landed = await deliver(webhookPool, plan.posts, errors, load);
      [sends, replies] = await Promise.all([Promise.all(operators), Promise.all(bots)]);
    } finally {
      load.done = true;
      await Promise.all([webhookPool.end(), operatorPool.end(), replyPool.end()]);
    }
    const seconds = (performance.now() - started) / 1000;
    const seen = deadlockErrors(errors);
    const ours = await deadlocksSince(sql, before, seen);
    const books = await ledger(sql, landed, load.numbers);
    const base = await naive(ctx, sql, landed.posts.slice(0, BASELINE_POSTS));
    const label = "statuses row by row, in arrival order";
    const latency = quantiles(landed.latencies);
    const totalSends = sends.reduce((a, b) => a + b, 0);
    const totalReplies = replies.reduce((a, b) => a + b, 0);

    res.rows.push(
      {
        metric: `deadlocks (pg_stat_database), ${plan.posts} POSTs + sends + replies`,
        value: ours,
        unit: "",
        target: "0",
      },
      {
        metric: "deadlocks per 100 POSTs",
        value: (ours * 100) / plan.posts,
        unit: "",
        baseline: (base.deadlocks * 100) / BASELINE_POSTS,
        baselineLabel: label,
        target: "0",
      },
      { metric: "deadlock errors seen by callers", value: seen, unit: "", target: "0" },
      { metric: "POSTs redelivered after an error", value: landed.redelivered, unit: `/${plan.posts}` },
      {
        metric: "inbound messages lost / counted twice",
        value: books.inboundLost,
        unit: `/${books.inboundDoubled}`,
      },
      {
        metric: "status events lost / counted twice",
        value: books.statusesLost,
        unit: `/${books.statusesDoubled}`,
        target: "0/0",
      },
      { metric: "recorded statuses not applied", value: books.unapplied, unit: "", target: "0" },
      { metric: "POST latency p50", value: latency.p50, unit: "ms" },
      { metric: "POST latency p95", value: latency.p95, unit: "ms" },
      { metric: "operator sends / bot replies meanwhile", value: totalSends, unit: `/${totalReplies}` },
    );
    check(res, "deadlocks (pg_stat_database)", ours, 0);
    check(res, "deadlock errors seen by callers", seen, 0);
    check(res, "POSTs never stored", landed.neverStored, 0);
    check(res, "inbound messages lost", books.inboundLost, 0);
    check(res, "inbound messages counted twice", books.inboundDoubled, 0);
    check(res, "status events lost", books.statusesLost, 0);
    check(res, "status events counted twice", books.statusesDoubled, 0);
    check(res, "recorded statuses not applied", books.unapplied, 0);
    res.notes.push(
      `${plan.posts} POSTs in ${
        seconds.toFixed(1)
      } s, ${IN_FLIGHT} in flight, with ${plan.operators} operators ` +
        `(${totalSends} sends) and ${plan.repliers} bot workers (${totalReplies} replies); errors by caller and ` +
        `SQLSTATE: ${
          JSON.stringify(errors)
        }; baseline: ${base.deadlocks} deadlocks in ${BASELINE_POSTS} POSTs.`,
    );
    res.samples = { errors, ledger: books, baseline: base, latencies_ms: rounded(landed.latencies) };
  } finally {
    // The bot workers stopped with batches claimed or due: no benchmark after this one may find them.
    await clearBuffers(sql);
    await sql.end();
  }
  return res;
}
