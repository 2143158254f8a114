// The webhook's only I/O: one database round trip per POST, through the SQL functions of the inbound
// migration. A signed body is ingested (with its raw copy when it had to be repaired) or kept raw with the
// reason: never dropped.
import postgres from "postgres";
import { isDataException, type Sql } from "../_shared/db.ts";
import { errorMessage } from "../_shared/log.ts";

/** What wa.ingest_webhook reports for one POST. */
export interface IngestCounts {
  event_id: number;
  new: number;
  replaced: number;
  duplicate: number;
  unattributed: number;
  statuses_recorded: number;
  statuses_duplicate: number;
  statuses_unmatched: number;
  statuses_applied: number;
  ignored: number;
  errors: number;
  /** Calls (wa.ingest_calls), when the POST has calls changes: changes, new events, redeliveries, unknown
   * events, events without a customer, calls changed. */
  call_changes?: number;
  calls_recorded?: number;
  calls_duplicate?: number;
  calls_unknown?: number;
  calls_unattributed?: number;
  calls_applied?: number;
}

export type StoreOutcome =
  | { kind: "ingested"; counts: IngestCounts; repaired: string | null }
  | { kind: "rejected"; eventId: number; reason: string };

/** A body ingested only after changes: the body as received, and what was changed. */
export interface Repair {
  rawBody: string;
  reason: string;
}

/**
 * An error the body causes, not the database: a data exception (class 22), or a limit such as a btree index
 * entry's size or the nesting depth (class 54). Meta would redeliver such a body forever, so it is kept instead.
 */
function isBodyError(error: unknown): boolean {
  return isDataException(error) || error instanceof postgres.PostgresError && error.code.startsWith("54");
}

/**
 * Keeps a signed body that cannot be ingested, raw, with why; with `payload` (its JSON text, if any) as jsonb
 * too when Postgres accepts it.
 */
export async function recordRejected(
  sql: Sql,
  rawBody: string,
  payload: string | null,
  reason: string,
): Promise<StoreOutcome> {
  const record = (json: string | null) =>
    sql<
      { id: string }[]
    >`select wa.record_rejected_webhook(${rawBody}, ${json}::text::jsonb, ${reason}) as id`;
  let rows;
  try {
    rows = await record(payload);
  } catch (error) {
    // JSON that jsonb still refuses (a number beyond numeric's range): the raw text alone keeps it.
    if (payload === null || !isBodyError(error)) throw error;
    rows = await record(null);
  }
  return { kind: "rejected", eventId: Number(rows[0]?.id), reason };
}

/** The fields of account-level changes wa.apply_account_changes applies; other POSTs skip its round trip. */
const ACCOUNT_FIELDS =
  /"(message_template_status_update|message_template_quality_update|template_category_update|user_preferences)"/;

// Bodies go over the wire as text and are cast in SQL (`::text::jsonb`): a parameter typed jsonb would make
// the driver JSON-encode the string a second time.

/**
 * Ingests a schema-valid body in one transaction, keeping the body as received when `repair` says it was
 * changed; an error the body causes that the schema missed turns into a rejection.
 */
export async function ingest(sql: Sql, payload: string, repair?: Repair): Promise<StoreOutcome> {
  try {
    const [row] = await sql<{ counts: IngestCounts }[]>`
      select wa.ingest_webhook(${payload}::text::jsonb, p_raw_body => ${repair?.rawBody ?? null},
                               p_error => ${repair?.reason ?? null}) as counts`;
    if (row === undefined) throw new Error("wa.ingest_webhook returned no row");
    // Templates and marketing preferences, in a transaction of their own (outbound migration); idempotent, so
    // Meta's redelivery after a failure here applies them again.
    if (ACCOUNT_FIELDS.test(payload)) await sql`select wa.apply_account_changes(${payload}::text::jsonb)`;
    return { kind: "ingested", counts: row.counts, repaired: repair?.reason ?? null };
  } catch (error) {
    if (!isBodyError(error)) throw error;
    return await recordRejected(
      sql,
      repair?.rawBody ?? payload,
      payload,
      `data error: ${errorMessage(error)}`,
    );
  }
}
