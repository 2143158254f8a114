// The template sync: reads GET /{waba-id}/message_templates page by page (Graph cursor paging: follow
// `paging.next` until it is absent) and stores each page as it comes, then marks what no page carried as
// DELETED. Pages are stored one by one so a sync of thousands of templates holds no long transaction; the
// deletion only runs after the last page, so a sync cut short deletes nothing.
import { z } from "zod";
import type { Sql } from "../_shared/db.ts";

const page = z.object({
  data: z.array(z.looseObject({ id: z.string(), name: z.string(), language: z.string() })),
  paging: z.looseObject({ next: z.url().optional() }).optional(),
});

// What the catalogue keeps (Meta returns only the default fields otherwise).
const FIELDS = "id,name,language,status,category,quality_score,parameter_format,components";

export interface SyncResult {
  waba_id: string;
  pages: number;
  templates: number;
  deleted: number;
}

/** Syncs the catalogue of `wabaId` from the Graph API at `apiBase` (e.g. https://graph.facebook.com/v25.0). */
export async function syncTemplates(
  sql: Sql,
  apiBase: string,
  accessToken: string,
  wabaId: string,
  pageSize = 100,
): Promise<SyncResult> {
  const [started] = await sql<{ at: Date }[]>`select now() as at`;
  const startedAt = started!.at;
  let url: string | undefined = `${apiBase}/${
    encodeURIComponent(wabaId)
  }/message_templates?fields=${FIELDS}&limit=${pageSize}`;
  let pages = 0;
  let templates = 0;
  while (url !== undefined) {
    const res: Response = await fetch(url, {
      headers: { authorization: `Bearer ${accessToken}` },
      signal: AbortSignal.timeout(15_000),
    });
    if (!res.ok) {
      throw new Error(`GET message_templates of ${wabaId}: HTTP ${res.status} ${await res.text()}`);
    }
    const body = page.parse(await res.json());
    const [row] = await sql<{ n: number }[]>`
      select wa.upsert_templates(${wabaId}, ${JSON.stringify(body.data)}::text::jsonb, ${startedAt}) as n`;
    templates += row?.n ?? 0;
    pages++;
    url = body.paging?.next;
  }
  const [done] = await sql<{ deleted: number }[]>`
    select wa.finish_template_sync(${wabaId}, ${startedAt}) as deleted`;
  return { waba_id: wabaId, pages, templates, deleted: done?.deleted ?? 0 };
}

/** The WhatsApp Business accounts of the numbers wabase knows. */
export async function knownAccounts(sql: Sql): Promise<string[]> {
  const rows = await sql<{ waba_id: string }[]>`
    select distinct waba_id from wa.phone_numbers where waba_id is not null order by waba_id`;
  return rows.map((row) => row.waba_id);
}
