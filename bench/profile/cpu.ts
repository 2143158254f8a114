// A Deno CPU profile of a child process, taken through its V8 inspector (the Chrome DevTools protocol's
// Profiler domain): samples every 100 µs while the workload runs, then self time summed per function and per
// module, so the table says which code (zod, postgres.js, the HTTP server, the handler) the CPU went to.

/** Self time of one function (or module) over the profile. */
export interface CpuCost {
  name: string;
  selfMs: number;
}

export interface CpuProfile {
  /** Sampled wall time, idle included. */
  totalMs: number;
  idleMs: number;
  byFunction: CpuCost[];
  byModule: CpuCost[];
}

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
}

interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

/** A free loopback port for the inspector. */
export function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr as Deno.NetAddr;
  listener.close();
  return port;
}

/** Where a function's code lives: an npm package, a file of the repository, or the runtime itself. */
function moduleOf(url: string): string {
  if (url === "") return "(runtime and native)";
  const npm = /node_modules\/(?:\.deno\/)?((?:@[^/]+\/)?[^/@]+)/.exec(url) ??
    /npm\/[^/]+\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (npm) return `npm:${npm[1]}`;
  if (url.startsWith("ext:")) return `deno ${url.split("/")[1] ?? url}`;
  const file = /\/(supabase\/functions\/.*|local\/.*|bench\/.*)$/.exec(url);
  return file ? file[1]! : url.replace(/^.*\//, "");
}

function summed(costs: Map<string, number>, limit: number): CpuCost[] {
  return [...costs].map(([name, selfMs]) => ({ name, selfMs })).sort((a, b) => b.selfMs - a.selfMs)
    .slice(0, limit);
}

/** Folds a V8 CPU profile into self time per function and per module. */
export function summarise(profile: Profile, limit = 15): CpuProfile {
  const nodes = new Map(profile.nodes.map((node) => [node.id, node]));
  const byFunction = new Map<string, number>();
  const byModule = new Map<string, number>();
  let totalMs = 0;
  let idleMs = 0;
  profile.samples.forEach((id, i) => {
    const ms = (profile.timeDeltas[i] ?? 0) / 1000;
    const frame = nodes.get(id)!.callFrame;
    totalMs += ms;
    if (frame.functionName === "(idle)") {
      idleMs += ms;
      return;
    }
    const module = moduleOf(frame.url);
    const fn = `${frame.functionName || "(anonymous)"} ${module}:${frame.lineNumber + 1}`;
    byFunction.set(fn, (byFunction.get(fn) ?? 0) + ms);
    byModule.set(module, (byModule.get(module) ?? 0) + ms);
  });
  return { totalMs, idleMs, byFunction: summed(byFunction, limit), byModule: summed(byModule, limit) };
}

/** Profiles the process whose inspector listens on `port` while `run` runs. */
export async function cpuProfile<T>(
  port: number,
  run: () => Promise<T>,
): Promise<{ value: T; profile: Profile }> {
  const targets = await (await fetch(`http://127.0.0.1:${port}/json/list`)).json();
  const socket = new WebSocket(targets[0].webSocketDebuggerUrl);
  await new Promise((resolve, reject) => {
    socket.onopen = resolve;
    socket.onerror = reject;
  });
  let nextId = 1;
  const pending = new Map<number, (result: unknown) => void>();
  socket.onmessage = (event) => {
    const message = JSON.parse(event.data);
    if (message.id !== undefined) pending.get(message.id)?.(message.result);
  };
  const send = (method: string, params: Record<string, unknown> = {}) =>
    new Promise<unknown>((resolve) => {
      const id = nextId++;
      pending.set(id, resolve);
      socket.send(JSON.stringify({ id, method, params }));
    });
  try {
    await send("Profiler.enable");
    await send("Profiler.setSamplingInterval", { interval: 100 });
    await send("Profiler.start");
    const value = await run();
    const { profile } = await send("Profiler.stop") as { profile: Profile };
    return { value, profile };
  } finally {
    socket.close();
  }
}

/** The profile as two Markdown tables: modules, then functions, in ms of CPU per unit of work. */
export function cpuTable(summary: CpuProfile, units: number): string {
  const busy = summary.totalMs - summary.idleMs;
  const rows = (costs: CpuCost[]) =>
    costs.map((c) =>
      `| \`${c.name.replaceAll("|", "\\|")}\` | ${(c.selfMs / units).toFixed(3)} | ${
        (100 * c.selfMs / busy).toFixed(0)
      }% |`
    );
  return [
    "| module (self time) | ms/unit | share |",
    "| --- | ---: | ---: |",
    ...rows(summary.byModule.slice(0, 8)),
    `| all busy time | ${(busy / units).toFixed(3)} | 100% |`,
    "",
    "| function (self time) | ms/unit | share |",
    "| --- | ---: | ---: |",
    ...rows(summary.byFunction.slice(0, 12)),
  ].join("\n");
}
