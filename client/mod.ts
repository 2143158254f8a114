// wabase's client SDK for the frontend (browsers and Node; no Deno APIs): one Realtime channel per topic,
// batched and cached lookups, and typed RPCs.
export {
  type ChangeListener,
  type ChannelStatus,
  createRealtimeHub,
  type HubStats,
  type RealtimeHub,
  type RealtimeHubOptions,
  realtimeOptions,
  type RealtimeSource,
  type ResyncEvent,
  type StatusEvent,
  type SubscribeOptions,
  type Unsubscribe,
} from "./realtime-hub.ts";
export {
  type BatchLoader,
  type BatchLoaderOptions,
  createBatchLoader,
  DEFAULT_MAX_BATCH,
  DEFAULT_TTL_MS,
  type FetchMany,
} from "./batch-loader.ts";
export { BackupService, type BackupServiceOptions } from "./backup-service.ts";
export { rpc } from "./rpc.ts";
export { type PostgrestErrorLike, WabaseRpcError } from "./errors.ts";
export type {
  BackupInfo,
  CallRow,
  ChangeOperation,
  ConversationRow,
  Database,
  Json,
  MessageReactionRow,
  MessageRow,
  MessageStatus,
  ProfileRow,
  ProspectBackupFlag,
  ProspectRow,
  Role,
  RowChange,
  WabaseClient,
  WabaseTables,
} from "./types.ts";
