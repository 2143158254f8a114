// GET /{waba-id}/message_templates for the fake Graph API: the WABA's templates a page at a time, with Graph
// cursor paging (`paging.cursors.after`, and `paging.next` while more remain), as the template sync reads them.

/** A template as GET /{waba-id}/message_templates returns it (id, name, language, status, category...). */
export type FakeTemplate = Record<string, unknown> & { id: string; name: string; language: string };

/** The page of `templates` that `url` asks for (`limit`, default 25; `after`, an opaque cursor). */
export function templatesPage(templates: FakeTemplate[], url: URL): Response {
  const limit = Math.min(Math.max(Number(url.searchParams.get("limit") ?? 25) || 25, 1), 100);
  const after = url.searchParams.get("after");
  const start = after === null ? 0 : Number(atob(after));
  const data = templates.slice(start, start + limit);
  const end = start + data.length;
  const next = new URL(url);
  next.searchParams.set("after", btoa(String(end)));
  return Response.json({
    data,
    paging: {
      cursors: { before: btoa(String(start)), after: btoa(String(end)) },
      ...(end < templates.length ? { next: next.href } : {}),
    },
  });
}
