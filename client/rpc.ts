// Typed calls of wabase's public RPCs. Each is one PostgREST request whatever the number of ids (the batch
// RPCs exist so a list never becomes one request per row), answers typed data, and throws WabaseRpcError.
import { WabaseRpcError } from "./errors.ts";
import type { BackupInfo, Database, ProspectBackupFlag, WabaseClient } from "./types.ts";

type Functions = Database["public"]["Functions"];

/** One RPC with the argument names and types of the generated schema. */
async function call<F extends keyof Functions>(
  supabase: WabaseClient,
  fn: F,
  args: Functions[F]["Args"],
): Promise<unknown> {
  const { data, error, status } = await supabase.rpc(fn, args);
  if (error) throw new WabaseRpcError(fn, error, status);
  return data;
}

function rows<T>(fn: string, data: unknown): T[] {
  // A set-returning function always answers an array; anything else is a proxy or a version mismatch, and
  // failing here beats resolving every key of a batch to null.
  if (!Array.isArray(data)) {
    throw new WabaseRpcError(fn, { message: "expected an array of rows", code: "unexpected_response" });
  }
  return data as T[];
}

/**
 * Backup information of any number of users in one request, in the order asked. Users the caller may not see
 * (RLS) or that do not exist are omitted, not errors.
 */
async function getBackupInfo(supabase: WabaseClient, userIds: readonly string[]): Promise<BackupInfo[]> {
  const fn = "get_backup_info";
  return rows<BackupInfo>(fn, await call(supabase, fn, { user_ids: [...userIds] }));
}

/**
 * For any number of prospects in one request: whether the caller handles each as the backup of its executive.
 * Prospects the caller may not see or that do not exist are omitted.
 */
async function prospectsHandledAsBackup(
  supabase: WabaseClient,
  prospectIds: readonly string[],
): Promise<ProspectBackupFlag[]> {
  const fn = "prospects_handled_as_backup";
  return rows<ProspectBackupFlag>(fn, await call(supabase, fn, { prospect_ids: [...prospectIds] }));
}

/**
 * Pauses the AI agent in a conversation until `until`, or until resumed when omitted or null. Resolves to the
 * pause's end as Postgres prints it (`"infinity"` for until resumed). PT403 when the caller may not act on
 * the conversation, PT404 when it does not exist.
 */
async function pauseBot(
  supabase: WabaseClient,
  conversationId: string,
  until?: Date | string | null,
): Promise<string> {
  const fn = "pause_bot";
  const args: Functions["pause_bot"]["Args"] = { conversation_id: conversationId };
  if (until !== undefined && until !== null) args.until = until instanceof Date ? until.toISOString() : until;
  const data = await call(supabase, fn, args);
  if (typeof data !== "string") {
    throw new WabaseRpcError(fn, { message: "expected a timestamp", code: "unexpected_response" });
  }
  return data;
}

/** Lets the AI agent answer a conversation again. Same access rules as pauseBot. */
async function resumeBot(supabase: WabaseClient, conversationId: string): Promise<void> {
  await call(supabase, "resume_bot", { conversation_id: conversationId });
}

/** A conversation's owner after an assignment RPC (docs/routing.md). */
export interface ConversationOwner {
  conversation_id: string;
  assigned_executive_id: string | null;
  team_id: string | null;
  status: "open" | "closed";
  routed_via: string | null;
}

type OwnerChange =
  | "claim_conversation"
  | "release_conversation"
  | "close_conversation"
  | "reopen_conversation";

/** Claims (PT409 when someone was first), releases, closes or reopens a conversation; audited. */
async function changeOwner(supabase: WabaseClient, fn: OwnerChange, conversationId: string) {
  return await call(supabase, fn, { conversation_id: conversationId }) as ConversationOwner;
}

/** Gives a conversation to an executive: coordinators within their team, admins anywhere. */
async function assignConversation(supabase: WabaseClient, conversationId: string, executiveId: string) {
  return await call(supabase, "assign_conversation", {
    conversation_id: conversationId,
    executive_id: executiveId,
  }) as ConversationOwner;
}

/** wabase's public RPCs, typed. */
export const rpc = {
  getBackupInfo,
  prospectsHandledAsBackup,
  pauseBot,
  resumeBot,
  assignConversation,
  claimConversation: (s: WabaseClient, id: string) => changeOwner(s, "claim_conversation", id),
  releaseConversation: (s: WabaseClient, id: string) => changeOwner(s, "release_conversation", id),
  closeConversation: (s: WabaseClient, id: string) => changeOwner(s, "close_conversation", id),
  reopenConversation: (s: WabaseClient, id: string) => changeOwner(s, "reopen_conversation", id),
} as const;
