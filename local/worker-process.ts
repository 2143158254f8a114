// A local worker run as its own process (`deno run -A local/<name>.ts`, as benchmarks and tests start them):
// the stack's environment, one line saying it started, and SIGINT/SIGTERM stopping it through its signal.
import { log } from "../supabase/functions/_shared/log.ts";

/** Runs `run` until SIGINT or SIGTERM; `name` is the log's function field (e.g. "buffer-worker"). */
export async function runAsProcess(name: string, run: (signal: AbortSignal) => Promise<void>): Promise<void> {
  const controller = new AbortController();
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    Deno.addSignalListener(signal, () => controller.abort());
  }
  const { loadLocalEnv } = await import("./env.ts");
  await loadLocalEnv();
  log("info", { function: name, msg: `${name.replace("-", " ")} started`, pid: Deno.pid });
  await run(controller.signal);
}
