// One unusable string or item must not cost the other updates of a POST (Meta batches up to 1,000 messages
// and statuses of many customers): escapes jsonb refuses are replaced, and items the schema refuses are left
// out, so the rest is ingested. The handler keeps the raw body with what was changed and why.
import { describeIssues, webhookPayload } from "./payload.ts";

// Each alternative starts at a backslash, and an escaped backslash is consumed whole, so `\\u0000` (an escaped
// backslash, then the text u0000) is never read as an escape. Group 1: a surrogate pair (kept); group 2: NUL
// or a lone surrogate, which jsonb refuses (22P05, 22P02) although JSON.parse accepts them.
const ESCAPES = /(\\ud[89ab][0-9a-f]{2}\\ud[c-f][0-9a-f]{2})|(\\u0000|\\ud[89a-f][0-9a-f]{2})|\\[^u]/gi;

/** JSON text with every escape Postgres cannot store (`\u0000`, a lone surrogate) replaced by `\ufffd`. */
export function replaceUnstorableEscapes(json: string): { text: string; replaced: number } {
  let replaced = 0;
  const text = json.replace(ESCAPES, (match, _pair, unstorable) => {
    if (unstorable === undefined) return match;
    replaced++;
    return "\\ufffd";
  });
  return { text, replaced };
}

/** The arrays of a `messages` or `calls` change's value whose elements are left out one by one. */
const ITEM_ARRAYS: ReadonlySet<PropertyKey> = new Set([
  "contacts",
  "messages",
  "statuses",
  "errors",
  "message_echoes",
  "state_sync",
  "calls",
]);

/**
 * The path of the smallest part of the body that an issue at `path` can be left out with: an element of a
 * change value's item arrays, else the change, else the entry; null when the envelope itself is wrong.
 */
function unitOf(path: readonly PropertyKey[]): readonly PropertyKey[] | null {
  if (path[0] !== "entry" || typeof path[1] !== "number") return null;
  if (path[2] !== "changes" || typeof path[3] !== "number") return path.slice(0, 2);
  if (path[4] === "value" && ITEM_ARRAYS.has(path[5] ?? "") && typeof path[6] === "number") {
    return path.slice(0, 7);
  }
  return path.slice(0, 4);
}

function child(value: unknown, key: PropertyKey): unknown {
  return typeof value === "object" && value !== null
    ? (value as Record<PropertyKey, unknown>)[key]
    : undefined;
}

/** Removes the array elements at `units` (paths ending in an index) from `body`, in place. */
function leaveOut(body: unknown, units: readonly (readonly PropertyKey[])[]): void {
  // Every array is found before any is shortened: removing an entry must not move the items of another.
  const indices = new Map<unknown[], Set<number>>();
  for (const unit of units) {
    const array = unit.slice(0, -1).reduce(child, body);
    if (!Array.isArray(array)) throw new Error(`issue path ${unit.join(".")} indexes no array`);
    const set = indices.get(array) ?? new Set<number>();
    set.add(unit[unit.length - 1] as number);
    indices.set(array, set);
  }
  for (const [array, set] of indices) {
    for (const index of [...set].sort((a, b) => b - a)) array.splice(index, 1);
  }
}

export type Validation =
  | { ok: true; payload: unknown; leftOut: string | null }
  | { ok: false; reason: string };

/**
 * Validates a parsed body as a Cloud API webhook, leaving out each part the schema refuses: the element of a
 * change's item arrays (contacts, messages, statuses, errors, echoes, address book entries), else the change,
 * else the entry. Only a wrong envelope refuses the whole body. `leftOut` names each issue at its path in the body as received. What remains has
 * passed every check: a refinement zod skipped because its object already failed lies in a part left out.
 */
export function validateLeavingOut(body: unknown): Validation {
  const result = webhookPayload.safeParse(body);
  if (result.success) return { ok: true, payload: body, leftOut: null };
  const units = result.error.issues.map((issue) => unitOf(issue.path));
  if (units.includes(null)) return { ok: false, reason: describeIssues(result.error) };
  leaveOut(body, units as (readonly PropertyKey[])[]);
  return { ok: true, payload: body, leftOut: describeIssues(result.error) };
}
