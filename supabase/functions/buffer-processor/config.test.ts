// The processor's configuration refuses, at start, settings under which a batch could outlive its claim.
import assert from "node:assert/strict";
import { ConfigError, parseEnv } from "../_shared/env.ts";
import { processorEnv } from "./config.ts";

const required = {
  SUPABASE_DB_URL: "postgres://postgres@127.0.0.1:5432/postgres",
  WHATSAPP_ACCESS_TOKEN: "a-long-enough-token",
  AGENT_URL: "http://127.0.0.1:9/agent",
};

function refusal(source: Record<string, string>): string {
  try {
    parseEnv(processorEnv, source);
  } catch (error) {
    if (error instanceof ConfigError) return error.message;
    throw error;
  }
  return "accepted";
}

Deno.test("item 9: a lease shorter than the agent's total time (attempts × timeout) is refused at start", () => {
  // Two agent attempts of 30 s and the backoff between them outlast the default 60 s lease.
  assert.match(refusal({ ...required, AGENT_TIMEOUT_MS: "30000" }), /BUFFER_LEASE_SECONDS/);
  // The default 20 s agent timeout needs more than 40 s.
  assert.match(refusal({ ...required, BUFFER_LEASE_SECONDS: "40" }), /BUFFER_LEASE_SECONDS/);
  assert.equal(refusal(required), "accepted");
  assert.equal(refusal({ ...required, AGENT_TIMEOUT_MS: "30000", BUFFER_LEASE_SECONDS: "62" }), "accepted");
});
