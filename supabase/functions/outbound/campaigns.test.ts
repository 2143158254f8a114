// Campaign sends end to end on real connections against the fake Graph API enforcing Meta's limits: once per
// (campaign, contact) with concurrent senders, opt-outs skipped, Meta's marketing refusals recorded, and a
// send whose worker died settled from Meta's statuses (matched by biz_opaque_callback_data) or sent again
// after the grace. Time is the database's or injected (p_now), never slept on.
import assert from "node:assert/strict";
import { startFakeGraph } from "../../../local/fake-graph.ts";
import { createUser } from "../../../local/testing/auth.ts";
import { testSql } from "../../../local/testing/db.ts";
import { messagesChange, statusUpdate, webhook } from "../../../local/testing/whatsapp-fixtures.ts";
import { governed } from "../_shared/governor.ts";
import { createGraphClient, graphRetryable } from "../_shared/graph.ts";
import { resilient } from "../_shared/resilience.ts";
import { createCampaignSender } from "./campaigns.ts";

const TOKEN = "campaigns-test-token";
type Sql = ReturnType<typeof testSql>;

/** A number at `mps` with an approved MARKETING template `promo` ({{1}} in the body), and an admin. */
async function setupNumber(sql: Sql, mps: number) {
  const number = String(400000000000000 + Math.floor(Math.random() * 1e13));
  const waba = String(Math.floor(Math.random() * 1e15));
  await sql`insert into wa.phone_numbers (phone_number_id, waba_id, send_rate_mps) values (${number}, ${waba}, ${mps})`;
  await sql`select wa.upsert_templates(${waba}, ${
    JSON.stringify([{
      id: `${waba}1`,
      name: "promo",
      language: "es_MX",
      status: "APPROVED",
      category: "MARKETING",
      components: [{ type: "BODY", text: "Hola {{1}}" }],
    }])
  }::text::jsonb)`;
  const admin = await createUser(sql, { role: "admin" });
  return { number, admin };
}

const phones = (number: string, count: number) =>
  Array.from({ length: count }, (_, i) => `52${number.slice(-5)}${String(i).padStart(5, "0")}`);

async function createCampaign(sql: Sql, adminId: string, number: string, waIds: string[]) {
  const recipients = waIds.map((wa) => ({
    phone: `+${wa}`,
    components: [{ type: "body", parameters: [{ type: "text", text: `cliente ${wa}` }] }],
  }));
  const [row] = await sql<{ id: string }[]>`
    select wa.create_campaign(${adminId}, 'Seguimiento', ${number}, 'promo', 'es_MX',
                              ${JSON.stringify(recipients)}::text::jsonb) as id`;
  return row!.id;
}

function sender(sql: Sql, graphUrl: string, workerId: string, concurrency = 4) {
  const graph = createGraphClient(
    `${graphUrl}/v25.0`,
    TOKEN,
    resilient({
      timeoutMs: 2000,
      maxAttempts: 1,
      baseDelayMs: 10,
      retryable: graphRetryable(1000),
      breaks: () => false,
      breakerThreshold: 100,
      halfOpenAfterMs: 1000,
    }),
  );
  const governor = (client: typeof graph) =>
    governed(client, sql, { priority: "campaign", maxWaitMs: 30_000 });
  return createCampaignSender(sql, graph, governor, {
    workerId,
    concurrency,
    leaseSeconds: 60,
    unknownGraceSeconds: 120,
    maxAttempts: 3,
  });
}

async function states(sql: Sql, campaignId: string) {
  const rows = await sql<{ state: string; n: number }[]>`
    select state, count(*)::int as n from wa.campaign_recipients where campaign_id = ${campaignId} group by state`;
  return Object.fromEntries(rows.map((row) => [row.state, row.n]));
}

Deno.test("4 concurrent senders: every recipient gets one message, opted-out contacts are skipped", async () => {
  const graph = await startFakeGraph({ accessToken: TOKEN, limits: { mps: 500 } });
  const sql = testSql(24);
  try {
    const { number, admin } = await setupNumber(sql, 500);
    const waIds = phones(number, 200);
    // Two stopped marketing before the campaign, one after it was created (noticed at claim time).
    await sql`insert into public.contacts (wa_id, marketing_opted_out_at) values (${waIds[
      0
    ]!}, now()), (${waIds[1]!}, now())`;
    const campaignId = await createCampaign(sql, admin.id, number, waIds);
    await sql`update public.contacts set marketing_opted_out_at = now() where wa_id = ${waIds[2]!}`;
    await Promise.all([0, 1, 2, 3].map((i) => sender(sql, graph.url, `w${i}`).drain({ budgetMs: 60_000 })));
    assert.deepEqual(await states(sql, campaignId), { sent: 197, skipped: 3 });
    const recipients = graph.sent.map((message) => message.body.to);
    assert.equal(recipients.length, 197);
    assert.equal(new Set(recipients).size, 197, "nobody got two");
    assert.deepEqual(graph.throttled, { 130429: 0, 131056: 0 });
    const [campaign] = await sql`select status from public.campaigns where id = ${campaignId}`;
    assert.equal(campaign?.status, "completed");
    const [progress] = await sql`select public.campaign_progress(${campaignId}) as p`;
    assert.equal(progress?.p.sent, 197);
    assert.equal(progress?.p.skipped, 3);
    const body = graph.sent[0]!.body as {
      template: { components: unknown[] };
      biz_opaque_callback_data: string;
    };
    assert.match(body.biz_opaque_callback_data, /^campaign:\d+$/);
  } finally {
    await sql.end();
    await graph.close();
  }
});

Deno.test("131049 and 131050 mark the recipient not sent with the reason; 131050 opts the contact out", async () => {
  const graph = await startFakeGraph({ accessToken: TOKEN });
  const sql = testSql(8);
  try {
    const { number, admin } = await setupNumber(sql, 1000);
    const waIds = phones(number, 3);
    const campaignId = await createCampaign(sql, admin.id, number, waIds);
    graph.enqueue(
      { kind: "error", status: 400, code: 131049, message: "(#131049) healthy ecosystem engagement" },
      { kind: "error", status: 400, code: 131050, message: "(#131050) user stopped marketing" },
    );
    await sender(sql, graph.url, "w", 1).drain({ budgetMs: 30_000 });
    const rows = await sql`select k.wa_id, r.state, r.error_code, r.reason, k.marketing_opt_out_source
                           from wa.campaign_recipients r join public.contacts k on k.id = r.contact_id
                           where r.campaign_id = ${campaignId} order by r.id`;
    assert.deepEqual(rows.map((row) => [row.state, row.error_code]), [
      ["failed", 131049],
      ["failed", 131050],
      ["sent", null],
    ]);
    assert.match(String(rows[0]?.reason), /131049/);
    assert.equal(rows[1]?.marketing_opt_out_source, "graph 131050");
    assert.equal(graph.received.length, 3, "Meta's marketing refusals are not retried");
  } finally {
    await sql.end();
    await graph.close();
  }
});

Deno.test("a worker killed mid-send: settled from Meta's `sent` status, or sent again after the grace", async () => {
  const graph = await startFakeGraph({ accessToken: TOKEN });
  const sql = testSql(8);
  try {
    const { number, admin } = await setupNumber(sql, 1000);
    const waIds = phones(number, 2);
    const campaignId = await createCampaign(sql, admin.id, number, waIds);
    const [clock] = await sql<{ now: Date }[]>`select now() + interval '1 second' as now`;
    const at = (seconds: number) => new Date(clock!.now.getTime() + seconds * 1000);
    // The dead worker claimed both; Meta accepted the first only, and reports it with our callback data.
    const claims = [];
    for (let i = 0; i < 2; i++) {
      const [claim] = await sql`select * from wa.claim_campaign_send('dead', interval '60 seconds',
                                                                     interval '120 seconds', ${at(0)})`;
      claims.push(claim!);
    }
    const accepted = await fetch(`${graph.url}/v25.0/${number}/messages`, {
      method: "POST",
      headers: { authorization: `Bearer ${TOKEN}`, "content-type": "application/json" },
      body: JSON.stringify(claims[0]!.body),
    }).then((res) => res.json());
    const wamid = accepted.messages[0].id as string;
    const status = {
      ...statusUpdate(wamid, "sent", { recipientId: waIds[0] }),
      biz_opaque_callback_data: claims[0]!.body.biz_opaque_callback_data,
    };
    await sql`select wa.ingest_webhook(${
      JSON.stringify(webhook(messagesChange({ phoneNumberId: number, statuses: [status] })))
    }::text::jsonb)`;
    const claim = (seconds: number) =>
      sql`select * from wa.claim_campaign_send('next', interval '60 seconds', interval '120 seconds', ${
        at(seconds)
      })`;
    assert.equal((await claim(30)).length, 0, "both leases still held");
    assert.equal(
      (await claim(61)).length,
      0,
      "after the lease: the first is settled as sent, the second waits",
    );
    const [first] = await sql`select r.state, m.status, m.wamid from wa.campaign_recipients r
                              join public.messages m on m.id = r.message_id where r.id = ${
      claims[0]!.recipient_id
    }`;
    assert.deepEqual(first, { state: "sent", status: "sent", wamid });
    const again = await claim(200);
    assert.equal(again.length, 1, "no status within the grace: the second is sent again");
    assert.equal(again[0]!.recipient_id, claims[1]!.recipient_id);
    assert.equal(again[0]!.message_id, claims[1]!.message_id, "the same message row, never a second one");
    // The dead worker's claim is fenced off: it may neither send (renew) nor record any more.
    const [renew] = await sql`select wa.renew_campaign_lease(${claims[1]!.recipient_id}, ${
      claims[1]!.attempt
    },
                                                             interval '60 seconds') as ours`;
    assert.equal(renew?.ours, false);
    const [late] = await sql`select wa.record_campaign_send(${claims[1]!.recipient_id}, ${claims[1]!.attempt},
                                                            'sent', 'wamid.late') as state`;
    assert.equal(late?.state, "sending", "a stale claim's result is not recorded");
    const [current] = await sql`select wa.renew_campaign_lease(${again[0]!.recipient_id}, ${
      again[0]!.attempt
    },
                                                               interval '60 seconds') as ours`;
    assert.equal(current?.ours, true, "the current claim may send");
    const [count] = await sql`select count(*)::int as n from public.messages m
                              join wa.campaign_recipients r on r.message_id = m.id where r.campaign_id = ${campaignId}`;
    assert.equal(count?.n, 2);
  } finally {
    await sql.end();
    await graph.close();
  }
});
