// Row types of the tables the frontend reads and receives through Realtime, as JSON: uuids and timestamps are
// strings, jsonb is Json. They mirror the migrations column for column; a new column lands here with its
// migration.

import type { SupabaseClient } from "@supabase/supabase-js";
import type { Database } from "./database.types.ts";

export type { Database };

/** A supabase-js client typed with wabase's schema: `createClient<Database>(url, key)`. */
export type WabaseClient = SupabaseClient<Database>;

/** Any JSON value (a jsonb column). */
export type Json = string | number | boolean | null | Json[] | { [key: string]: Json };

/** public.conversations: one thread per (business phone number, contact). */
export interface ConversationRow {
  id: string;
  phone_number_id: string;
  contact_id: string;
  assigned_executive_id: string | null;
  team_id: string | null;
  last_message_at: string | null;
  /** The customer's latest inbound message: opens WhatsApp's 24-hour customer-service window. */
  last_inbound_at: string | null;
  created_at: string;
  updated_at: string;
  bot_last_activity_at: string | null;
  /** The agent does not answer while this is in the future (`"infinity"`: until resumed). */
  bot_paused_until: string | null;
  bot_paused_by: string | null;
  /** Closed conversations leave their executive's open count; a customer message reopens them. */
  status: string;
  closed_at: string | null;
  /** How the current owner was decided (docs/routing.md); null when never routed. */
  routed_via: string | null;
  /** The agent asked for a human (docs/conversation.md); cleared by resume_bot. */
  handoff_requested_at: string | null;
  handoff_reason: string | null;
}

/** The delivery state of an outbound message, advanced only by rank. */
export type MessageStatus = "pending" | "sent" | "delivered" | "read" | "played" | "failed" | "unknown";

/** public.messages: every inbound and outbound WhatsApp message, one row per wamid. */
export interface MessageRow {
  id: string;
  conversation_id: string;
  /** Meta's message id; null for an outbound message until the send answers. */
  wamid: string | null;
  direction: "inbound" | "outbound";
  type: string;
  /** The message object as Meta delivered it (inbound) or as it was sent (outbound). */
  body: Exclude<Json, null>;
  content_text: string | null;
  context_wamid: string | null;
  sent_at: string;
  received_at: string;
  /** Null for inbound messages. */
  status: MessageStatus | null;
  status_at: string | null;
  error: Json | null;
  idempotency_key: string | null;
  /** The operator who sent an outbound message (null: the bot, or inbound). */
  sent_by: string | null;
  read_at: string | null;
  read_by: string | null;
  read_receipt_sent_at: string | null;
  /** Inbound media (docs/media.md): pending, stored, failed (media_error says why) or removed by retention. */
  media_state: "pending" | "stored" | "failed" | "removed" | null;
  /** In the bucket whatsapp-media: `storage.from("whatsapp-media").createSignedUrl(media_path)`. */
  media_path: string | null;
  media_size: number | null;
  media_sha256: string | null;
  media_mime_type: string | null;
  media_error: string | null;
  /** A voice note's transcript, when transcription is configured. */
  media_transcript: string | null;
  /** Not sent through the Cloud API: typed in the WhatsApp Business app, or imported from its history. */
  origin: "business_app" | "history" | null;
  edited_at: string | null;
  /** Deleted for everyone by its sender: body and text are cleared. */
  revoked_at: string | null;
}

/** public.message_reactions: the current reaction of each side to a message (emoji null: removed). */
export interface MessageReactionRow {
  message_wamid: string;
  reactor: "customer" | "business";
  conversation_id: string;
  emoji: string | null;
  reacted_at: string;
  reaction_wamid: string | null;
}

/** public.calls: a WhatsApp voice call (Calling API) in its conversation; state only rises. */
export interface CallRow {
  id: string;
  /** Meta's call id (wacid.…). */
  call_id: string;
  phone_number_id: string;
  conversation_id: string;
  contact_id: string;
  direction: "inbound" | "outbound";
  state: "ringing" | "connected" | "ended";
  started_at: string;
  answered_at: string | null;
  ended_at: string | null;
  duration_seconds: number | null;
  end_status: string | null;
  rejected: boolean;
  /** Null while in progress. */
  outcome: "completed" | "rejected" | "missed" | "failed" | "unanswered" | null;
  /** When a call still ringing is flagged on the live monitor. */
  alert_at: string;
  assigned_executive_id: string | null;
  biz_opaque_callback_data: string | null;
  created_at: string;
  updated_at: string;
}

/** A user's role, from their server-owned profile. */
export type Role = "admin" | "coordinator" | "executive";

/** public.profiles: the server-owned profile of each user. */
export interface ProfileRow {
  id: string;
  email: string | null;
  full_name: string | null;
  role: Role;
  team_id: string | null;
  /** The number customers are routed to: the user's own, or their backup's while one is assigned. */
  phone: string | null;
  /** The user's own number, kept while a backup's number is routed instead. */
  original_phone: string | null;
  backup_id: string | null;
  active: boolean;
  created_at: string;
  updated_at: string;
}

/** public.prospects: leads, each owned by an executive of a team. */
export interface ProspectRow {
  id: string;
  team_id: string | null;
  executive_id: string | null;
  contact_id: string | null;
  name: string | null;
  phone: string | null;
  created_at: string;
}

/** The rows of the tables whose changes are broadcast, by table name. */
export interface WabaseTables {
  calls: CallRow;
  conversations: ConversationRow;
  messages: MessageRow;
  message_reactions: MessageReactionRow;
  profiles: ProfileRow;
  prospects: ProspectRow;
}

/** A row of public.get_backup_info(user_ids). */
export interface BackupInfo {
  user_id: string;
  backup_id: string | null;
  has_backup: boolean;
  backup_name: string | null;
  backup_phone: string | null;
  phone: string | null;
  original_phone: string | null;
}

/** A row of public.prospects_handled_as_backup(prospect_ids). */
export interface ProspectBackupFlag {
  prospect_id: string;
  executive_id: string | null;
  /** Whether the caller handles this prospect as the backup of its executive. */
  handled_as_backup: boolean;
}

/** A row change operation, which is also the broadcast event name. */
export type ChangeOperation = "INSERT" | "UPDATE" | "DELETE";

interface RowChangeBase {
  /** The topic it arrived on, without the `realtime:` prefix (`team:<uuid>`, `executive:<uuid>`). */
  topic: string;
  table: string;
  schema: string;
  /** The id realtime.send gave the broadcast that carried it (a statement's rows share one), when present. */
  id?: string;
}

/**
 * One row change as `realtime.broadcast_changes` sends it (the hub splits a statement's batch into its rows):
 * the new row (null on DELETE) and the old one (null on INSERT), with the operation to narrow on.
 */
export type RowChange<T> =
  | (RowChangeBase & { operation: "INSERT"; record: T; old_record: null })
  | (RowChangeBase & { operation: "UPDATE"; record: T; old_record: T })
  | (RowChangeBase & { operation: "DELETE"; record: null; old_record: T });

// ============================================================================================
// The generated schema (client/database.types.ts, `npm run types`) keeps the row types above honest: each
// has exactly the generated row's columns, with types at least as narrow. A migration that adds, drops or
// retypes a column fails `deno check` here until the row type follows.
// ============================================================================================
type GeneratedRow<T extends keyof Database["public"]["Tables"]> = Database["public"]["Tables"][T]["Row"];
type Mirrors<Mine, Generated> = [keyof Mine] extends [keyof Generated]
  ? [keyof Generated] extends [keyof Mine] ? Mine extends Generated ? true : false : false
  : false;
type Holds<T extends true> = T;
// One union: a single `false` among them makes it `boolean`, which Holds refuses.
export type _RowsMirrorTheSchema = Holds<
  | Mirrors<CallRow, GeneratedRow<"calls">>
  | Mirrors<ConversationRow, GeneratedRow<"conversations">>
  | Mirrors<MessageRow, GeneratedRow<"messages">>
  | Mirrors<MessageReactionRow, GeneratedRow<"message_reactions">>
  | Mirrors<ProfileRow, GeneratedRow<"profiles">>
  | Mirrors<ProspectRow, GeneratedRow<"prospects">>
>;
