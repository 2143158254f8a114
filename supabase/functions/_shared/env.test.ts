import assert from "node:assert/strict";
import { z } from "zod";
import { ConfigError, httpUrl, parseEnv, postgresUrl, secret } from "./env.ts";

const schema = z.object({
  SUPABASE_DB_URL: postgresUrl,
  AGENT_URL: httpUrl,
  WHATSAPP_APP_SECRET: secret(16),
  QUIET_SECONDS: z.coerce.number().int().positive().default(10),
});

function problemsOf(source: Record<string, string>): string[] {
  try {
    parseEnv(schema, source);
  } catch (error) {
    assert.ok(error instanceof ConfigError);
    return error.problems;
  }
  throw new Error("parseEnv accepted an invalid environment");
}

Deno.test("parseEnv returns typed values with defaults applied", () => {
  const env = parseEnv(schema, {
    SUPABASE_DB_URL: "postgresql://postgres:postgres@127.0.0.1:54322/postgres",
    AGENT_URL: "http://127.0.0.1:9999/agent/",
    WHATSAPP_APP_SECRET: "0123456789abcdef",
  });
  assert.equal(env.QUIET_SECONDS, 10);
  assert.equal(env.AGENT_URL, "http://127.0.0.1:9999/agent");
});

Deno.test("parseEnv names every missing variable", () => {
  assert.deepEqual(problemsOf({ AGENT_URL: "http://x" }), [
    "SUPABASE_DB_URL is missing",
    "WHATSAPP_APP_SECRET is missing",
  ]);
});

Deno.test("parseEnv treats an empty variable as missing", () => {
  assert.deepEqual(
    problemsOf({ SUPABASE_DB_URL: "", AGENT_URL: "http://x", WHATSAPP_APP_SECRET: "0123456789abcdef" }),
    ["SUPABASE_DB_URL is missing"],
  );
});

Deno.test("parseEnv names malformed variables with the reason", () => {
  const problems = problemsOf({
    SUPABASE_DB_URL: "mysql://nope",
    AGENT_URL: "ftp://agent",
    WHATSAPP_APP_SECRET: "short",
    QUIET_SECONDS: "-3",
  });
  assert.deepEqual(problems.slice(0, 3), [
    "SUPABASE_DB_URL must be a postgres:// connection URL",
    "AGENT_URL must be an http(s) URL",
    "WHATSAPP_APP_SECRET must be at least 16 characters",
  ]);
  assert.match(problems[3] ?? "", /^QUIET_SECONDS /);
  assert.equal(problems.length, 4);
});

Deno.test("a ConfigError's message lists the problems", () => {
  assert.equal(
    new ConfigError(["A is missing", "B must be x"]).message,
    "invalid configuration: A is missing; B must be x",
  );
});
