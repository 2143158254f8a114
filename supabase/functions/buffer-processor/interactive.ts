// Reply buttons and lists the agent may answer with, checked against WhatsApp's limits before anything is
// written, and the Graph API `interactive` object they become (fact sheet WHATSAPP.md §2.2; Meta's
// messages/interactive-reply-buttons-messages and messages/interactive-list-messages). A reply Meta would refuse
// with #131009 is refused here instead, as the agent's error, so it is never half-sent.
import { z } from "zod";

const trimmed = (max: number) => z.string().trim().min(1).max(max);

const button = z.strictObject({ id: trimmed(256), title: trimmed(20) });

const row = z.strictObject({ id: trimmed(200), title: trimmed(24), description: trimmed(72).optional() });

const unique = (values: string[]) => new Set(values).size === values.length;

/** Up to 3 reply buttons: 20-character titles, unique titles and ids. */
const buttons = z.strictObject({
  type: z.literal("button"),
  header: trimmed(60).optional(),
  footer: trimmed(60).optional(),
  buttons: z.array(button).min(1).max(3)
    .refine((list) => unique(list.map((b) => b.title)), { error: "button titles must be unique" })
    .refine((list) => unique(list.map((b) => b.id)), { error: "button ids must be unique" }),
});

/** A list: a 20-character button opening up to 10 sections with 10 rows in total, unique row ids. */
const list = z.strictObject({
  type: z.literal("list"),
  header: trimmed(60).optional(),
  footer: trimmed(60).optional(),
  button: trimmed(20),
  sections: z.array(z.strictObject({ title: trimmed(24).optional(), rows: z.array(row).min(1) })).min(1).max(
    10,
  )
    .refine((sections) => sections.reduce((n, s) => n + s.rows.length, 0) <= 10, {
      error: "a list holds at most 10 rows in total",
    })
    .refine((sections) => unique(sections.flatMap((s) => s.rows.map((r) => r.id))), {
      error: "row ids must be unique",
    })
    .refine((sections) => sections.length === 1 || sections.every((s) => s.title !== undefined), {
      error: "every section needs a title when there are several",
    }),
});

export const interactiveReply = z.discriminatedUnion("type", [buttons, list]);
export type InteractiveReply = z.infer<typeof interactiveReply>;

/** The body text limit of each kind: 1,024 characters under buttons, 4,096 under a list. */
export function bodyLimit(reply: InteractiveReply): number {
  return reply.type === "button" ? 1024 : 4096;
}

/** The Graph API `interactive` object for `reply` with `text` as its body. */
export function interactiveObject(text: string, reply: InteractiveReply): Record<string, unknown> {
  const frame = {
    ...(reply.header === undefined ? {} : { header: { type: "text", text: reply.header } }),
    body: { text },
    ...(reply.footer === undefined ? {} : { footer: { text: reply.footer } }),
  };
  if (reply.type === "button") {
    return {
      type: "button",
      ...frame,
      action: { buttons: reply.buttons.map((b) => ({ type: "reply", reply: { id: b.id, title: b.title } })) },
    };
  }
  return { type: "list", ...frame, action: { button: reply.button, sections: reply.sections } };
}
