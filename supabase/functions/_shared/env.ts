// Environment configuration, validated with zod once per isolate. A missing or malformed variable is
// reported by name, so a misconfigured deployment says what to fix instead of failing somewhere later.
import { z } from "zod";

/** Raised when the environment does not satisfy a function's schema; lists every offending variable. */
export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid configuration: ${problems.join("; ")}`);
    this.name = "ConfigError";
  }
}

/** A postgres:// or postgresql:// connection string. */
export const postgresUrl = z.string().regex(
  /^postgres(ql)?:\/\/\S+$/,
  "must be a postgres:// connection URL",
);

/** An http(s) URL, without a trailing slash so paths can be appended. */
export const httpUrl = z.url({ protocol: /^https?$/, error: "must be an http(s) URL" })
  .transform((url) => url.replace(/\/+$/, ""));

/** A secret that must be long enough to be one (HMAC keys, JWT secrets). */
export const secret = (minLength = 32) =>
  z.string().min(minLength, `must be at least ${minLength} characters`);

type Source = Record<string, string | undefined>;

/** Parses `source` (the process environment by default) against `schema`, naming every bad variable. */
export function parseEnv<S extends z.ZodObject>(schema: S, source: Source = Deno.env.toObject()): z.infer<S> {
  const present = Object.fromEntries(Object.entries(source).filter(([, value]) => value !== ""));
  const result = schema.safeParse(present);
  if (result.success) return result.data;
  const problems = result.error.issues.map((issue) => {
    const name = String(issue.path[0] ?? "environment");
    return present[name] === undefined ? `${name} is missing` : `${name} ${issue.message}`;
  });
  throw new ConfigError([...new Set(problems)]);
}

const cache = new WeakMap<z.ZodObject, unknown>();

/** `parseEnv` on the process environment, memoised per schema for the life of the isolate. */
export function loadEnv<S extends z.ZodObject>(schema: S): z.infer<S> {
  if (!cache.has(schema)) cache.set(schema, parseEnv(schema));
  return cache.get(schema) as z.infer<S>;
}
