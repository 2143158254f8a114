// The template side of an operator send: a template is checked against the catalogue before any API call
// (exists, approved, parameters), and a free-form send outside the 24-hour window is refused with the
// approved templates the UI can offer instead (details.templates).
import postgres from "postgres";
import type { Sql } from "../_shared/db.ts";
import { asHttpError, HttpError } from "../_shared/http.ts";

/**
 * A 422 for a template the catalogue refuses (with the expected parameters when they did not match), or a
 * marketing template to a contact who stopped marketing messages.
 */
export async function checkTemplate(
  sql: Sql,
  actor: string,
  conversationId: string,
  template: unknown,
): Promise<void> {
  try {
    await sql`
      select wa.check_template_send_to(${actor}, ${conversationId}, ${
      JSON.stringify(template)
    }::text::jsonb)`;
  } catch (error) {
    if (!(error instanceof postgres.PostgresError) || error.code !== "P0422") throw error;
    const refusal = asHttpError(error);
    throw new HttpError(
      422,
      refusal.code,
      refusal.message,
      error.detail ? { expected: JSON.parse(error.detail).expected } : undefined,
    );
  }
}

/** Runs `begin`; a refusal outside the window becomes a 422 listing the conversation's approved templates. */
export async function withWindowTemplates<T>(
  sql: Sql,
  conversationId: string,
  begin: () => Promise<T>,
): Promise<T> {
  try {
    return await begin();
  } catch (error) {
    if (!(error instanceof postgres.PostgresError) || error.hint !== "outside_service_window") throw error;
    const [row] = await sql<{ templates: unknown[]; closed_at: Date | null }[]>`
      select wa.window_templates(${conversationId}) as templates,
             (select last_inbound_at + interval '24 hours' from public.conversations where id = ${conversationId})
               as closed_at`;
    throw new HttpError(422, "outside_service_window", error.message, {
      templates: row?.templates ?? [],
      window_closed_at: row?.closed_at ?? null,
    });
  }
}
