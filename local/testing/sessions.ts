// A session-counter workload shared by the optimistic-locking tests and the contention benchmark: writers
// that each add one to data.counter of one conversation's chat session through withVersionRetry.
import type postgres from "postgres";
import { withVersionRetry } from "../../supabase/functions/_shared/session.ts";
import { clearBuffers, seedDueBuffers } from "./processor.ts";

export interface CounterSession {
  state: string;
  data: { counter?: number };
  version: number;
}

/** A new conversation (through the real ingest) with no buffer left behind. */
export async function newConversation(sql: postgres.Sql): Promise<string> {
  const { phoneNumberId } = await seedDueBuffers(sql, 1);
  await clearBuffers(sql);
  const [row] = await sql<{ id: string }[]>`
    select id from public.conversations where phone_number_id = ${phoneNumberId}`;
  if (row === undefined) throw new Error("seedDueBuffers created no conversation");
  return row.id;
}

/** The conversation's session as stored (version 0 when none). */
export async function storedSession(sql: postgres.Sql, conversationId: string): Promise<CounterSession> {
  const [row] = await sql<CounterSession[]>`
    select state, data, version::integer from wa.get_chat_session(${conversationId})`;
  if (row === undefined) throw new Error("wa.get_chat_session returned no row");
  return row;
}

/** One writer: adds one to data.counter through the helper; resolves to the version it wrote. */
export function incrementCounter(
  sql: postgres.Sql,
  conversationId: string,
  options: Parameters<typeof withVersionRetry>[1] = {},
): Promise<number> {
  return withVersionRetry({
    read: () => storedSession(sql, conversationId),
    apply: (current: CounterSession) => ({
      state: "counting",
      data: { ...current.data, counter: (current.data.counter ?? 0) + 1 },
    }),
    write: async (next, expectedVersion) => {
      const [row] = await sql<{ version: number }[]>`
        select wa.update_chat_session(${conversationId}, ${expectedVersion}, ${next.state},
                                      ${JSON.stringify(next.data)}::text::jsonb)::integer as version`;
      return row!.version;
    },
  }, options);
}
