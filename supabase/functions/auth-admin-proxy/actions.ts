// The privileged writes the frontend may ask for, validated with zod. Authorization is not decided here: the
// SQL functions decide it from the caller's server-side profile, in the same transaction as the write.
import { z } from "zod";
import type { Sql } from "../_shared/db.ts";

const userId = z.uuid({ error: "must be a user id (uuid)" });

const updateProfile = z.strictObject({
  action: z.literal("update_profile"),
  user_id: userId,
  full_name: z.string().trim().min(1).max(200).optional(),
  phone: z.string().regex(/^\+?[0-9][0-9 ()-]{5,24}$/, "must be a phone number").optional(),
  role: z.enum(["admin", "coordinator", "executive"]).optional(),
  team_id: z.uuid().nullable().optional(),
  active: z.boolean().optional(),
}).refine((body) => Object.keys(body).length > 2, { error: "name at least one field to change" });

export const adminAction = z.discriminatedUnion("action", [
  z.strictObject({ action: z.literal("assign_backup"), executive_id: userId, backup_id: userId }),
  z.strictObject({ action: z.literal("remove_backup"), executive_id: userId }),
  updateProfile,
]);

export type AdminAction = z.infer<typeof adminAction>;

/** Runs one action as `actorId` in one transaction; resolves to the affected profile. */
export async function runAction(sql: Sql, actorId: string, action: AdminAction): Promise<unknown> {
  let rows: { profile: unknown }[];
  switch (action.action) {
    case "assign_backup":
      rows =
        await sql`select wa.assign_backup(${actorId}, ${action.executive_id}, ${action.backup_id}) as profile`;
      break;
    case "remove_backup":
      rows = await sql`select wa.remove_backup(${actorId}, ${action.executive_id}) as profile`;
      break;
    case "update_profile": {
      const { action: _, user_id, ...changes } = action;
      rows = await sql`select wa.update_profile(${actorId}, ${user_id},
                                                ${JSON.stringify(changes)}::text::jsonb) as profile`;
      break;
    }
  }
  return rows[0]?.profile;
}
