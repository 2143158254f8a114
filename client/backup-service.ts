// Backup lookups for list rows (seed 000): every badge of a 2,146-row list asks at once, and the answer must
// cost one request per batch, not one per row. Two batch loaders over the batch RPCs; when a Realtime hub is
// given, changed profiles and prospects are forgotten as the database announces them, and everything is
// forgotten after a reconnect, since changes may have been missed meanwhile.
import { type BatchLoader, createBatchLoader } from "./batch-loader.ts";
import type { RealtimeHub, Unsubscribe } from "./realtime-hub.ts";
import { rpc } from "./rpc.ts";
import type {
  BackupInfo,
  ProfileRow,
  ProspectBackupFlag,
  ProspectRow,
  RowChange,
  WabaseClient,
} from "./types.ts";

export interface BackupServiceOptions {
  /** The most ids in one RPC call (default 100). */
  maxBatch?: number;
  /** How long an answer is reused (default 30 000 ms). */
  ttlMs?: number;
  /** Invalidate from Realtime: with `teamTopic`, changed rows are refetched on their next lookup. */
  hub?: Pick<RealtimeHub, "subscribe" | "onResync">;
  /**
   * The topic whose `profiles` and `prospects` changes to follow: `team:<uuid>` for a coordinator,
   * `executive:<uuid>` for an executive (the topics the caller may join).
   */
  teamTopic?: string;
  /** The clock (tests). */
  now?: () => number;
}

export class BackupService {
  readonly #info: BatchLoader<string, BackupInfo>;
  readonly #flags: BatchLoader<string, ProspectBackupFlag>;
  // Whose cached info names this user as backup (backup_name, backup_phone): forgotten with the backup's own.
  readonly #backedUpBy = new Map<string, Set<string>>();
  readonly #unsubscribes: Unsubscribe[] = [];

  constructor(supabase: WabaseClient, options: BackupServiceOptions = {}) {
    const loaderOptions = { maxBatch: options.maxBatch, ttlMs: options.ttlMs, now: options.now };
    this.#info = createBatchLoader(async (userIds) => {
      const rows = await rpc.getBackupInfo(supabase, userIds);
      for (const row of rows) {
        if (row.backup_id === null) continue;
        let users = this.#backedUpBy.get(row.backup_id);
        if (users === undefined) this.#backedUpBy.set(row.backup_id, users = new Set());
        users.add(row.user_id);
      }
      return new Map(rows.map((row) => [row.user_id, row]));
    }, loaderOptions);
    this.#flags = createBatchLoader(async (prospectIds) => {
      const rows = await rpc.prospectsHandledAsBackup(supabase, prospectIds);
      return new Map(rows.map((row) => [row.prospect_id, row]));
    }, loaderOptions);

    const { hub, teamTopic } = options;
    if (hub === undefined || teamTopic === undefined) return;
    this.#unsubscribes.push(
      hub.subscribe({ topic: teamTopic, table: "profiles" }, (change) => this.#profileChanged(change)),
      hub.subscribe({ topic: teamTopic, table: "prospects" }, (change) => this.#prospectChanged(change)),
      hub.onResync(teamTopic, () => this.invalidate()),
    );
  }

  /** The user's backup information, or null when they do not exist or the caller may not see them. */
  getBackupInfo(userId: string): Promise<BackupInfo | null> {
    return this.#info.load(userId);
  }

  /** Whether the caller handles the prospect as its executive's backup (false when unknown or not visible). */
  async isHandledAsBackup(prospectId: string): Promise<boolean> {
    return (await this.#flags.load(prospectId))?.handled_as_backup ?? false;
  }

  /** Forgets every cached answer. */
  invalidate(): void {
    this.#info.invalidate();
    this.#flags.invalidate();
    this.#backedUpBy.clear();
  }

  /** Stops following Realtime and forgets everything. */
  dispose(): void {
    for (const unsubscribe of this.#unsubscribes.splice(0)) unsubscribe();
    this.invalidate();
  }

  #profileChanged(change: RowChange<ProfileRow>): void {
    const id = change.record?.id ?? change.old_record?.id;
    if (id === undefined) return;
    // An INSERT matters too: a lookup made before the profile existed cached null.
    this.#info.invalidate(id);
    for (const userId of this.#backedUpBy.get(id) ?? []) this.#info.invalidate(userId);
    this.#backedUpBy.delete(id);
    // A backup assigned or removed changes which prospects the caller handles as backup, for any of them.
    if (change.operation !== "UPDATE" || change.record.backup_id !== change.old_record.backup_id) {
      this.#flags.invalidate();
    }
  }

  #prospectChanged(change: RowChange<ProspectRow>): void {
    const id = change.record?.id ?? change.old_record?.id;
    if (id !== undefined) this.#flags.invalidate(id);
  }
}
