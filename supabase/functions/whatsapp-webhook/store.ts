// The webhook's only I/O: one database round trip per POST, through the SQL functions of the inbound
// migration. A signed body is either ingested or kept raw with the reason: never dropped.
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
}

export type StoreOutcome =
  | { kind: "ingested"; counts: IngestCounts }
  | { kind: "rejected"; eventId: number; reason: string };

/** Keeps a signed body that cannot be ingested, raw, with why; as JSON too when Postgres accepts it as such. */
export async function recordRejected(
  sql: Sql,
  rawBody: string,
  reason: string,
  isJson: boolean,
): Promise<StoreOutcome> {
  const record = (payload: string | null) =>
    sql<
      { id: string }[]
    >`select wa.record_rejected_webhook(${rawBody}, ${payload}::text::jsonb, ${reason}) as id`;
  let rows;
  try {
    rows = await record(isJson ? rawBody : null);
  } catch (error) {
    // JSON that jsonb refuses (a \u0000 escape): the raw text alone still keeps it.
    if (!isJson || !isDataException(error)) throw error;
    rows = await record(null);
  }
  return { kind: "rejected", eventId: Number(rows[0]?.id), reason };
}

// Bodies go over the wire as text and are cast in SQL (`::text::jsonb`): a parameter typed jsonb would make
// the driver JSON-encode the string a second time.

/** Ingests a schema-valid body in one transaction; a data error the schema missed turns into a rejection. */
export async function ingest(sql: Sql, rawBody: string): Promise<StoreOutcome> {
  try {
    const [row] = await sql<
      { counts: IngestCounts }[]
    >`select wa.ingest_webhook(${rawBody}::text::jsonb) as counts`;
    if (row === undefined) throw new Error("wa.ingest_webhook returned no row");
    return { kind: "ingested", counts: row.counts };
  } catch (error) {
    if (!isDataException(error)) throw error;
    return await recordRejected(sql, rawBody, `data error: ${errorMessage(error)}`, true);
  }
}
