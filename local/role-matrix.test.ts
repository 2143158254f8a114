// Every RPC, view and table the frontend API exposes, called through the real PostgREST (behind the gateway)
// as anon, an executive, a coordinator and an admin (and the service role where it is the caller), with the
// status or the rows each must get. The exposed objects are read from the catalog, so a new RPC or view
// without a row here fails the test.
import assert from "node:assert/strict";
import { startTestApi, type TestApi } from "./testing/api.ts";
import { accessToken, createTeam, createUser, type TestUser } from "./testing/auth.ts";
import { testSql } from "./testing/db.ts";

type Role = "anon" | "executive" | "coordinator" | "admin" | "service_role";

/** What a caller gets: an HTTP status with PostgREST's error code, or 2xx with these fixture ids. */
type Outcome = { status: number; code?: string } | { ids: string[] };

interface Call {
  /** The catalog object this row covers. */
  object: string;
  method: "GET" | "POST";
  path: string;
  body?: unknown;
  /** The fixture ids in a 2xx answer (rows' id column), for comparing rows. */
  idOf?: (row: Record<string, unknown>) => string;
  expect: Partial<Record<Role, Outcome>>;
}

const denied = (status: number) => ({ status, code: "42501" });
// PostgREST answers insufficient_privilege with 401 for anon (no JWT) and 403 for a signed-in role.
const anonDenied = denied(401);
const userDenied = denied(403);
// wabase's public RPCs raise PostgREST's PTnnn SQLSTATEs, which it answers with HTTP status nnn.
const refused = (status: number) => ({ status, code: `PT${status}` });

interface Fixture {
  executive: TestUser;
  colleague: TestUser;
  coordinator: TestUser;
  otherExecutive: TestUser;
  admin: TestUser;
  conversation: string;
  otherConversation: string;
  prospect: string;
  otherProspect: string;
  contact: string;
  otherContact: string;
  message: string;
  otherMessage: string;
  team: string;
}

/** Two teams: north (coordinator, executive, colleague) and south (another executive); an admin. */
async function fixture(): Promise<Fixture> {
  const sql = testSql(1);
  try {
    const team = await createTeam(sql);
    const south = await createTeam(sql);
    const executive = await createUser(sql, { role: "executive", teamId: team });
    const colleague = await createUser(sql, { role: "executive", teamId: team });
    const coordinator = await createUser(sql, { role: "coordinator", teamId: team });
    const otherExecutive = await createUser(sql, { role: "executive", teamId: south });
    const admin = await createUser(sql, { role: "admin" });
    const number = `${Date.now()}${Math.floor(Math.random() * 1e6)}`;
    await sql`insert into wa.phone_numbers (phone_number_id) values (${number})`;
    const conversationOf = async (owner: TestUser, teamId: string) => {
      const [contact] = await sql`insert into public.contacts (wa_id, profile_name)
                                  values (${crypto.randomUUID()}, 'Matrix') returning id`;
      const [conversation] = await sql`
        insert into public.conversations (phone_number_id, contact_id, assigned_executive_id, team_id,
                                          last_message_at)
        values (${number}, ${contact!.id}, ${owner.id}, ${teamId}, now()) returning id`;
      const wamid = crypto.randomUUID();
      const [message] = await sql`
        insert into public.messages (conversation_id, wamid, direction, type, body, content_text, sent_at)
        values (${conversation!.id}, ${wamid}, 'inbound', 'text', '{}', 'hola', now()) returning id`;
      await sql`insert into public.message_reactions (message_wamid, reactor, conversation_id, emoji, reacted_at)
                values (${wamid}, 'customer', ${conversation!.id}, '👍', now())`;
      await sql`insert into public.message_edits (message_id, edit_wamid, previous_body, edited_at)
                values (${message!.id}, ${crypto.randomUUID()}, '{}', now())`;
      await sql`insert into public.calls (call_id, phone_number_id, conversation_id, contact_id, direction, state,
                                          started_at, alert_at)
                values (${crypto.randomUUID()}, ${number}, ${conversation!.id}, ${contact!.id}, 'inbound',
                        'ringing', now(), now() + interval '30 seconds')`;
      const [prospect] = await sql`insert into public.prospects (team_id, executive_id, contact_id, name)
                                   values (${teamId}, ${owner.id}, ${contact!.id}, 'Matrix') returning id`;
      return {
        conversation: conversation!.id as string,
        prospect: prospect!.id as string,
        contact: contact!.id as string,
        message: message!.id as string,
      };
    };
    const mine = await conversationOf(executive, team);
    const theirs = await conversationOf(otherExecutive, south);
    return {
      executive,
      colleague,
      coordinator,
      otherExecutive,
      admin,
      team,
      conversation: mine.conversation,
      otherConversation: theirs.conversation,
      prospect: mine.prospect,
      otherProspect: theirs.prospect,
      contact: mine.contact,
      otherContact: theirs.contact,
      message: mine.message,
      otherMessage: theirs.message,
    };
  } finally {
    await sql.end();
  }
}

function calls(f: Fixture): Call[] {
  const users = [f.executive, f.colleague, f.coordinator, f.otherExecutive, f.admin].map((user) => user.id);
  const north = [f.executive.id, f.colleague.id, f.coordinator.id];
  const inList = (ids: string[]) => `in.(${ids.join(",")})`;
  const all = (ids: string[]) => ({ ids });
  return [
    {
      object: "rpc list_conversations",
      method: "POST",
      path: "/rpc/list_conversations",
      body: { p_limit: 200 },
      idOf: (row) => String(row.conversation_id),
      expect: {
        anon: anonDenied,
        executive: all([f.conversation]),
        coordinator: all([f.conversation]),
        admin: all([f.conversation, f.otherConversation]),
        service_role: userDenied,
      },
    },
    {
      object: "rpc get_backup_info",
      method: "POST",
      path: "/rpc/get_backup_info",
      body: { user_ids: users },
      idOf: (row) => String(row.user_id),
      expect: {
        anon: anonDenied,
        executive: all(north),
        coordinator: all(north),
        admin: all(users),
        service_role: userDenied,
      },
    },
    {
      object: "rpc prospects_handled_as_backup",
      method: "POST",
      path: "/rpc/prospects_handled_as_backup",
      body: { prospect_ids: [f.prospect, f.otherProspect] },
      idOf: (row) => String(row.prospect_id),
      expect: {
        anon: anonDenied,
        executive: all([f.prospect]),
        coordinator: all([f.prospect]),
        admin: all([f.prospect, f.otherProspect]),
        service_role: userDenied,
      },
    },
    {
      object: "rpc pause_bot",
      method: "POST",
      path: "/rpc/pause_bot",
      body: { conversation_id: f.conversation },
      expect: {
        anon: anonDenied,
        executive: { status: 200 },
        coordinator: { status: 200 },
        admin: { status: 200 },
        service_role: userDenied,
      },
    },
    {
      object: "rpc pause_bot",
      method: "POST",
      path: "/rpc/pause_bot",
      body: { conversation_id: f.otherConversation },
      expect: { executive: refused(403), coordinator: refused(403) },
    },
    {
      object: "rpc resume_bot",
      method: "POST",
      path: "/rpc/resume_bot",
      body: { conversation_id: f.conversation },
      expect: {
        anon: anonDenied,
        executive: { status: 204 },
        coordinator: { status: 204 },
        admin: { status: 204 },
        service_role: userDenied,
      },
    },
    {
      object: "rpc resume_bot",
      method: "POST",
      path: "/rpc/resume_bot",
      body: { conversation_id: crypto.randomUUID() },
      expect: { executive: refused(404) },
    },
    {
      object: "rpc assign_conversation",
      method: "POST",
      path: "/rpc/assign_conversation",
      body: { conversation_id: f.conversation, executive_id: f.executive.id },
      expect: {
        anon: anonDenied,
        executive: refused(403),
        coordinator: { status: 200 },
        admin: { status: 200 },
        service_role: userDenied,
      },
    },
    {
      object: "rpc claim_conversation",
      method: "POST",
      path: "/rpc/claim_conversation",
      body: { conversation_id: f.conversation },
      expect: {
        anon: anonDenied,
        executive: refused(409),
        coordinator: refused(409),
        admin: refused(409),
        service_role: userDenied,
      },
    },
    ...["release_conversation", "close_conversation"].map((name) => ({
      object: `rpc ${name}`,
      method: "POST" as const,
      path: `/rpc/${name}`,
      body: { conversation_id: crypto.randomUUID() },
      expect: {
        anon: anonDenied,
        executive: refused(404),
        coordinator: refused(404),
        admin: refused(404),
        service_role: userDenied,
      },
    })),
    {
      object: "rpc reopen_conversation",
      method: "POST",
      path: "/rpc/reopen_conversation",
      body: { conversation_id: f.conversation },
      expect: {
        anon: anonDenied,
        executive: { status: 200 },
        coordinator: { status: 200 },
        admin: { status: 200 },
        service_role: userDenied,
      },
    },
    {
      object: "rpc set_availability",
      method: "POST",
      path: "/rpc/set_availability",
      body: { executive_id: f.executive.id, away: false },
      expect: {
        anon: anonDenied,
        executive: { status: 200 },
        coordinator: { status: 200 },
        admin: { status: 200 },
        service_role: userDenied,
      },
    },
    {
      object: "rpc set_executive_capacity",
      method: "POST",
      path: "/rpc/set_executive_capacity",
      body: { executive_id: f.executive.id, capacity: null },
      expect: {
        anon: anonDenied,
        executive: refused(403),
        coordinator: { status: 200 },
        admin: { status: 200 },
        service_role: userDenied,
      },
    },
    {
      object: "rpc set_routing_rule",
      method: "POST",
      path: "/rpc/set_routing_rule",
      body: { phone_number_id: "none", team_id: f.team, strategy: "bogus" },
      expect: {
        anon: anonDenied,
        executive: refused(403),
        coordinator: refused(422),
        admin: refused(422),
        service_role: userDenied,
      },
    },
    {
      object: "rpc delete_routing_rule",
      method: "POST",
      path: "/rpc/delete_routing_rule",
      body: { phone_number_id: crypto.randomUUID() },
      expect: {
        anon: anonDenied,
        executive: refused(404),
        coordinator: refused(404),
        admin: refused(404),
        service_role: userDenied,
      },
    },
    {
      object: "rpc list_templates",
      method: "POST",
      path: "/rpc/list_templates",
      body: { p_phone_number_id: crypto.randomUUID() },
      idOf: (row) => String(row.template_id),
      expect: {
        anon: anonDenied,
        executive: all([]),
        coordinator: all([]),
        admin: all([]),
        service_role: userDenied,
      },
    },
    {
      object: "rpc create_campaign",
      method: "POST",
      path: "/rpc/create_campaign",
      body: {
        name: "c",
        phone_number_id: crypto.randomUUID(),
        template_name: "t",
        template_language: "es_MX",
        recipients: [],
      },
      expect: {
        anon: anonDenied,
        executive: refused(403),
        coordinator: refused(422),
        admin: refused(422),
        service_role: userDenied,
      },
    },
    {
      object: "rpc set_campaign_status",
      method: "POST",
      path: "/rpc/set_campaign_status",
      body: { campaign_id: crypto.randomUUID(), action: "pause" },
      expect: {
        anon: anonDenied,
        executive: refused(404),
        coordinator: refused(404),
        admin: refused(404),
        service_role: userDenied,
      },
    },
    {
      object: "rpc campaign_progress",
      method: "POST",
      path: "/rpc/campaign_progress",
      body: { campaign_id: crypto.randomUUID() },
      expect: {
        anon: anonDenied,
        executive: refused(404),
        coordinator: refused(404),
        admin: refused(404),
        service_role: userDenied,
      },
    },
    {
      object: "table campaigns",
      method: "GET",
      path: `/campaigns?select=id&id=eq.${crypto.randomUUID()}`,
      expect: {
        anon: anonDenied,
        executive: all([]),
        coordinator: all([]),
        admin: all([]),
      },
    },
    {
      object: "rpc set_marketing_opt_out",
      method: "POST",
      path: "/rpc/set_marketing_opt_out",
      body: { conversation_id: crypto.randomUUID(), opted_out: true },
      expect: {
        anon: anonDenied,
        executive: refused(404),
        coordinator: refused(404),
        admin: refused(404),
        service_role: userDenied,
      },
    },
    {
      object: "rpc ops_metrics",
      method: "POST",
      path: "/rpc/ops_metrics",
      body: {},
      expect: {
        anon: anonDenied,
        executive: userDenied,
        coordinator: userDenied,
        admin: userDenied,
        service_role: { status: 200 },
      },
    },
    {
      object: "rpc live_calls",
      method: "POST",
      path: "/rpc/live_calls",
      body: {},
      idOf: (row) => String(row.conversation_id),
      expect: {
        anon: anonDenied,
        executive: all([f.conversation]),
        coordinator: all([f.conversation]),
        admin: all([f.conversation, f.otherConversation]),
        service_role: userDenied,
      },
    },
    {
      object: "rpc answer_call",
      method: "POST",
      path: "/rpc/answer_call",
      body: { call_id: crypto.randomUUID() },
      expect: {
        anon: anonDenied,
        executive: refused(404),
        coordinator: refused(404),
        admin: refused(404),
        service_role: userDenied,
      },
    },
    {
      object: "rpc call_metrics",
      method: "POST",
      path: "/rpc/call_metrics",
      body: {},
      expect: {
        anon: anonDenied,
        executive: userDenied,
        coordinator: userDenied,
        admin: userDenied,
        service_role: { status: 200 },
      },
    },
    {
      object: "rpc ops_readiness",
      method: "POST",
      path: "/rpc/ops_readiness",
      body: {},
      expect: {
        anon: anonDenied,
        executive: userDenied,
        coordinator: userDenied,
        admin: userDenied,
        service_role: { status: 200 },
      },
    },
    {
      object: "view team_members",
      method: "GET",
      path: `/team_members?select=id&id=${inList(users)}`,
      expect: {
        anon: anonDenied,
        executive: all(north),
        coordinator: all(north),
        admin: all(users),
        service_role: userDenied,
      },
    },
    {
      object: "table conversations",
      method: "GET",
      path: `/conversations?select=id&id=${inList([f.conversation, f.otherConversation])}`,
      expect: {
        anon: anonDenied,
        executive: all([f.conversation]),
        coordinator: all([f.conversation]),
        admin: all([f.conversation, f.otherConversation]),
      },
    },
    {
      object: "table messages",
      method: "GET",
      path: `/messages?select=id:conversation_id&conversation_id=${
        inList([f.conversation, f.otherConversation])
      }`,
      expect: {
        anon: anonDenied,
        executive: all([f.conversation]),
        coordinator: all([f.conversation]),
        admin: all([f.conversation, f.otherConversation]),
      },
    },
    {
      object: "table message_reactions",
      method: "GET",
      path: `/message_reactions?select=id:conversation_id&conversation_id=${
        inList([f.conversation, f.otherConversation])
      }`,
      expect: {
        anon: anonDenied,
        executive: all([f.conversation]),
        coordinator: all([f.conversation]),
        admin: all([f.conversation, f.otherConversation]),
      },
    },
    {
      object: "table calls",
      method: "GET",
      path: `/calls?select=id:conversation_id&conversation_id=${
        inList([f.conversation, f.otherConversation])
      }`,
      expect: {
        anon: anonDenied,
        executive: all([f.conversation]),
        coordinator: all([f.conversation]),
        admin: all([f.conversation, f.otherConversation]),
      },
    },
    {
      object: "table message_edits",
      method: "GET",
      path: `/message_edits?select=id:message_id&message_id=${inList([f.message, f.otherMessage])}`,
      expect: {
        anon: anonDenied,
        executive: all([f.message]),
        coordinator: all([f.message]),
        admin: all([f.message, f.otherMessage]),
      },
    },
    {
      object: "table prospects",
      method: "GET",
      path: `/prospects?select=id&id=${inList([f.prospect, f.otherProspect])}`,
      expect: {
        anon: anonDenied,
        executive: all([f.prospect]),
        coordinator: all([f.prospect]),
        admin: all([f.prospect, f.otherProspect]),
      },
    },
    {
      object: "table contacts",
      method: "GET",
      path: `/contacts?select=id&id=${inList([f.contact, f.otherContact])}`,
      expect: {
        anon: anonDenied,
        executive: all([f.contact]),
        coordinator: all([f.contact]),
        admin: all([f.contact, f.otherContact]),
      },
    },
    {
      object: "table profiles",
      method: "GET",
      path: `/profiles?select=id&id=${inList(users)}`,
      expect: { anon: anonDenied, executive: all(north), coordinator: all(north), admin: all(users) },
    },
    {
      object: "table teams",
      method: "GET",
      path: `/teams?select=id&id=eq.${f.team}`,
      expect: {
        anon: anonDenied,
        executive: all([f.team]),
        coordinator: all([f.team]),
        admin: all([f.team]),
      },
    },
    {
      object: "table conversations",
      method: "POST",
      path: "/conversations",
      body: { phone_number_id: "x", contact_id: crypto.randomUUID() },
      expect: { anon: anonDenied, executive: userDenied, admin: userDenied },
    },
  ];
}

/** The public objects an API role may call or read, from the catalog. */
async function exposedObjects(): Promise<string[]> {
  const sql = testSql(1);
  try {
    const rows = await sql<{ object: string }[]>`
      select 'rpc ' || p.proname as object
      from pg_proc p
      where p.pronamespace = 'public'::regnamespace
        and exists (select from unnest(array['anon', 'authenticated', 'service_role']) r (name)
                    where has_function_privilege(r.name, p.oid, 'execute'))
      union
      select case c.relkind when 'v' then 'view ' else 'table ' end || c.relname
      from pg_class c
      where c.relnamespace = 'public'::regnamespace and c.relkind in ('r', 'v', 'm', 'p', 'f')
        and exists (select from unnest(array['anon', 'authenticated', 'service_role']) r (name)
                    where has_table_privilege(r.name, c.oid, 'select, insert, update, delete'))
      order by 1`;
    return rows.map((row) => row.object);
  } finally {
    await sql.end();
  }
}

async function token(role: Role, f: Fixture, api: TestApi): Promise<string | null> {
  switch (role) {
    case "anon":
      return null;
    case "service_role":
      return api.serviceRoleKey;
    default:
      return await accessToken(f[role]);
  }
}

Deno.test("role matrix: every exposed RPC, view and table through PostgREST, for every role", async () => {
  const f = await fixture();
  const api = await startTestApi({ functions: () => new Response(null, { status: 404 }) });
  try {
    const matrix = calls(f);
    assert.deepEqual(
      [...new Set(matrix.map((call) => call.object))].sort(),
      await exposedObjects(),
      "the matrix covers exactly what the API roles can reach in public",
    );
    const failures: string[] = [];
    for (const call of matrix) {
      for (const [role, outcome] of Object.entries(call.expect) as [Role, Outcome][]) {
        const bearer = await token(role, f, api);
        const res = await fetch(`${api.url}/rest/v1${call.path}`, {
          method: call.method,
          headers: {
            apikey: api.anonKey,
            "content-type": "application/json",
            ...(bearer === null ? {} : { authorization: `Bearer ${bearer}` }),
          },
          body: call.body === undefined ? undefined : JSON.stringify(call.body),
        });
        const text = await res.text();
        const body = text === "" ? null : JSON.parse(text);
        const label = `${call.method} ${call.path.split("?")[0]} as ${role}`;
        if ("ids" in outcome) {
          const rows = Array.isArray(body) ? body as Record<string, unknown>[] : [];
          const got = rows.map(call.idOf ?? ((row) => String(row.id))).filter((id) =>
            outcome.ids.includes(id)
          );
          if (res.status !== 200 || JSON.stringify(got.sort()) !== JSON.stringify([...outcome.ids].sort())) {
            failures.push(
              `${label}: ${res.status} ${JSON.stringify(got)}, expected ${outcome.ids.length} rows`,
            );
          }
        } else if (
          res.status !== outcome.status || (outcome.code !== undefined && body?.code !== outcome.code)
        ) {
          failures.push(`${label}: ${res.status} ${text.slice(0, 120)}, expected ${JSON.stringify(outcome)}`);
        }
      }
    }
    assert.deepEqual(failures, []);
  } finally {
    await api.close();
  }
});
