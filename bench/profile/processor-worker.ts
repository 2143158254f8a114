// The processor of the profile (bench/profile/processor.ts) as a child process, so its CPU is sampled alone:
// one lane on its own pool, as a drain benchmark worker at 0 ms. It drains when told on stdin (a line with a
// number: at most that many batches; 0: until nothing is due) and answers each drain with one JSON line
// {"drained": summary} on stdout, among the processor's own log lines.
import postgres from "postgres";
import { parseEnv } from "../../supabase/functions/_shared/env.ts";
import { processorEnv } from "../../supabase/functions/buffer-processor/config.ts";
import { createProcessor } from "../../supabase/functions/buffer-processor/processor.ts";

const env = parseEnv(processorEnv);
const sql = postgres(env.SUPABASE_DB_URL, { max: env.PROCESSOR_CONCURRENCY + 1, onnotice: () => {} });
const processor = await createProcessor(env, sql, `profile-${Deno.pid}`);
console.log(JSON.stringify({ ready: true }));
let buffered = "";
for await (const chunk of Deno.stdin.readable.pipeThrough(new TextDecoderStream())) {
  buffered += chunk;
  const lines = buffered.split("\n");
  buffered = lines.pop() ?? "";
  for (const line of lines) {
    const maxBatches = Number(line) || Number.POSITIVE_INFINITY;
    const summary = await processor.drain({ budgetMs: Number.POSITIVE_INFINITY, maxBatches });
    console.log(JSON.stringify({ drained: summary }));
  }
}
await sql.end();
