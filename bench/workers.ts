// Real buffer-worker processes (local/buffer-worker.ts, as `npm start` runs it), one OS process each, that
// can be killed with SIGKILL and replaced: the chaos benchmark's victims, and the debounce benchmark's worker.
// Each worker's JSON log lines are read for its batch outcomes; an exit nobody asked for is recorded.
const workerPath = new URL("../local/buffer-worker.ts", import.meta.url).pathname;
// deno-lint-ignore no-control-regex -- the escape sequence is what is being removed
const ANSI_COLOUR = /\x1b\[[0-9;]*m/g;

interface Worker {
  id: string;
  child: Deno.ChildProcess;
  killed: boolean;
  done: Promise<void>;
}

export interface WorkerPool {
  /** Batch outcomes logged by every worker so far. */
  outcomes: Record<string, number>;
  /** Exits not caused by killOne() or stop() (the worker is replaced): code and the last stderr lines. */
  unexpectedExits: string[];
  kills: number;
  /** SIGKILLs a random live worker and starts a replacement. */
  killOne(): Promise<void>;
  stop(): Promise<void>;
}

export async function readLines(
  stream: ReadableStream<Uint8Array>,
  onLine: (line: string) => void,
): Promise<void> {
  let buffered = "";
  for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
    buffered += chunk;
    const lines = buffered.split("\n");
    buffered = lines.pop() ?? "";
    for (const line of lines) onLine(line);
  }
}

/** Starts `count` workers (buffer workers, or the local worker at `script`) with `env` on top of the real one. */
export function startWorkers(count: number, env: Record<string, string>, script = workerPath): WorkerPool {
  const outcomes: Record<string, number> = {};
  const unexpectedExits: string[] = [];
  const live = new Set<Worker>();
  let started = 0;
  let kills = 0;
  let stopping = false;

  const spawn = () => {
    const id = `bench-worker-${++started}`;
    const child = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", script],
      env,
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const stderr: string[] = [];
    const worker: Worker = { id, child, killed: false, done: Promise.resolve() };
    worker.done = (async () => {
      await Promise.all([
        readLines(child.stdout, (line) => {
          if (!line.includes('"job":"batch"')) return;
          const outcome = String(JSON.parse(line).outcome);
          outcomes[outcome] = (outcomes[outcome] ?? 0) + 1;
        }),
        // Deno colours its uncaught-error report: keep the last error line, plain.
        readLines(child.stderr, (line) => {
          const plain = line.replace(ANSI_COLOUR, "").trim();
          if (/error/i.test(plain)) stderr.splice(0, stderr.length, plain);
        }),
      ]);
      const status = await child.status;
      live.delete(worker);
      if (worker.killed) return;
      // Like a supervisor would: note it, start another.
      unexpectedExits.push(`${id} exited with ${status.code}: ${stderr.join("")}`);
      if (!stopping) spawn();
    })();
    live.add(worker);
  };
  for (let i = 0; i < count; i++) spawn();

  return {
    outcomes,
    unexpectedExits,
    get kills() {
      return kills;
    },
    async killOne() {
      const victims = [...live].filter((worker) => !worker.killed);
      const victim = victims[Math.floor(Math.random() * victims.length)];
      if (victim === undefined) return;
      victim.killed = true;
      kills++;
      victim.child.kill("SIGKILL");
      await victim.done;
      spawn();
    },
    async stop() {
      stopping = true;
      const workers = [...live];
      for (const worker of workers) {
        worker.killed = true;
        worker.child.kill("SIGTERM");
      }
      await Promise.all(workers.map((worker) => worker.done));
    },
  };
}
