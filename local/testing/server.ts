// Runs the real local functions server as a child process, as `npm start` does, for end-to-end tests.

const serverPath = new URL("../functions-server.ts", import.meta.url).pathname;

export interface RunningServer {
  /** Base URL of the functions, ending in /functions/v1/. */
  url: string;
  stop: () => Promise<void>;
}

/**
 * Starts the server on a free port with `env` on top of the real environment; resolves once it listens. With
 * `inspectPort`, its V8 inspector listens there (for a CPU profile).
 */
export async function spawnServer(env: Record<string, string>, inspectPort?: number): Promise<RunningServer> {
  const inspect = inspectPort === undefined ? [] : [`--inspect=127.0.0.1:${inspectPort}`];
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", ...inspect, serverPath],
    env: { ...env, FUNCTIONS_PORT: "0" },
    stdout: "piped",
    stderr: "null",
  }).spawn();
  const lines = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let buffered = "";
  while (!buffered.includes("\n")) {
    const { value, done } = await lines.read();
    if (done) throw new Error(`the functions server exited before listening: ${(await child.status).code}`);
    buffered += value;
  }
  const { url } = JSON.parse(buffered.split("\n")[0] ?? "");
  // Keep draining the per-request log lines so the child never blocks on a full pipe.
  const drained = (async () => {
    while (!(await lines.read()).done) { /* discard */ }
  })();
  return {
    url,
    stop: async () => {
      child.kill("SIGTERM");
      await child.status;
      await drained;
    },
  };
}

/** Runs the server with its stdout and stderr captured until it exits on its own (a refused start). */
export async function runServerToExit(env: Record<string, string>): Promise<Deno.CommandOutput> {
  return await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", serverPath],
    env: { ...env, FUNCTIONS_PORT: "0" },
    stdout: "piped",
    stderr: "piped",
  }).output();
}
