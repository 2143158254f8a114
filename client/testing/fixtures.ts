// A small team in the test database for the client's tests: Ana and Beto (executives, Beto backs up Ana),
// a prospect and a conversation of each; and their access tokens.
import type postgres from "postgres";
import { accessToken, createTeam, createUser, type TestUser } from "../../local/testing/auth.ts";

export interface TeamFixture {
  teamId: string;
  ana: TestUser;
  beto: TestUser;
  /** Ana's prospect and conversation (Beto handles them as her backup). */
  anaProspect: string;
  anaConversation: string;
  betoProspect: string;
  betoConversation: string;
  /** Tokens like GoTrue's for each. */
  tokens: { ana: string; beto: string };
}

export async function teamFixture(sql: postgres.Sql): Promise<TeamFixture> {
  const teamId = await createTeam(sql);
  const ana = await createUser(sql, { role: "executive", teamId, phone: "5215500000001" });
  const beto = await createUser(sql, { role: "executive", teamId, phone: "5215500000002" });
  await sql`update public.profiles set backup_id = ${beto.id}, original_phone = phone, phone = '5215500000002'
            where id = ${ana.id}`;
  const number = crypto.randomUUID();
  await sql`insert into wa.phone_numbers (phone_number_id) values (${number})`;
  const workOf = async (owner: TestUser) => {
    const [contact] = await sql`insert into public.contacts (wa_id, profile_name)
                                values (${crypto.randomUUID()}, 'Cliente') returning id`;
    const [conversation] = await sql`
      insert into public.conversations (phone_number_id, contact_id, assigned_executive_id, team_id, last_message_at)
      values (${number}, ${contact!.id}, ${owner.id}, ${teamId}, now()) returning id`;
    const [prospect] = await sql`insert into public.prospects (team_id, executive_id, contact_id, name)
                                 values (${teamId}, ${owner.id}, ${contact!.id}, 'Cliente') returning id`;
    return { conversation: conversation!.id as string, prospect: prospect!.id as string };
  };
  const anaWork = await workOf(ana);
  const betoWork = await workOf(beto);
  return {
    teamId,
    ana,
    beto,
    anaProspect: anaWork.prospect,
    anaConversation: anaWork.conversation,
    betoProspect: betoWork.prospect,
    betoConversation: betoWork.conversation,
    tokens: { ana: await accessToken(ana), beto: await accessToken(beto) },
  };
}
