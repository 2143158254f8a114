// What each guarantee of the ingest costs (issue 23: "where a target cannot be met without giving up a
// guarantee, say which guarantee costs what, measured"): `wa.ingest_webhook` at 1 message per POST and 16 in
// flight, as shipped, then with the triggers behind one guarantee after another switched off (realtime
// broadcasts, media jobs and hold, routing, the due-time NOTIFY), beside the floor: a
// one-row idempotent upsert per call on the same cluster. Rounds alternate and each configuration keeps its
// best round, so the machine's other load weighs alike on all. Triggers are switched by the bench cluster's
// superuser and always switched back on.
import postgres from "postgres";
import { workload } from "../ingest.ts";
import { type BenchContext, runBounded, superuserUrl } from "../lib.ts";
import type { ProfileSection } from "./section.ts";

const CONCURRENCY = 16;

const BROADCASTS = [
  "public.messages",
  "public.conversations",
].flatMap((table) =>
  ["insert", "update", "delete"].map((op) => [table, `${table.split(".")[1]}_broadcast_${op}`])
);

const MEDIA = [
  ["public.messages", "messages_mark_media_pending"],
  ["public.messages", "messages_enqueue_media_jobs"],
  ["wa.buffer_messages", "buffer_messages_hold_for_media"],
];
const ROUTING = [["public.conversations", "conversations_route"]];
const DUE_NOTIFY = [["wa.buffers", "buffers_notify_due_on_insert"], [
  "wa.buffers",
  "buffers_notify_due_on_update",
]];

interface Configuration {
  name: string;
  off: string[][];
}

/** Each step switches one more guarantee off: the difference from the line above is what it costs. */
const CONFIGURATIONS: Configuration[] = [
  { name: "as shipped", off: [] },
  { name: "− realtime broadcasts", off: BROADCASTS },
  { name: "− media jobs and hold", off: [...BROADCASTS, ...MEDIA] },
  { name: "− routing", off: [...BROADCASTS, ...MEDIA, ...ROUTING] },
  { name: "− the due-time NOTIFY", off: [...BROADCASTS, ...MEDIA, ...ROUTING, ...DUE_NOTIFY] },
];

export async function profileGuarantees(ctx: BenchContext): Promise<ProfileSection> {
  const admin = postgres(superuserUrl(ctx), { max: 1, onnotice: () => {} });
  const direct = postgres(ctx.dbUrl, { max: CONCURRENCY, prepare: false, onnotice: () => {} });
  const perRound = ctx.quick ? 150 : 600;
  const rounds = ctx.quick ? 2 : 4;
  const best = new Map<string, number>();
  const switchAll = async (off: string[][], enable: boolean) => {
    for (const [table, trigger] of off) {
      await admin.unsafe(`alter table ${table} ${enable ? "enable" : "disable"} trigger ${trigger}`);
    }
  };
  const started = performance.now();
  try {
    await direct`create table if not exists public.bench_floor (k text primary key, n integer not null)`;
    const floor = async () => {
      const run = await runBounded(perRound, CONCURRENCY, async (i) => {
        await direct`insert into public.bench_floor (k, n) values (${`k${i % 200}`}, 1)
                     on conflict (k) do update set n = bench_floor.n + 1`;
      });
      return perRound / (run.elapsedMs / 1000);
    };
    for (let round = 0; round < rounds; round++) {
      for (const configuration of CONFIGURATIONS) {
        const load = await workload(1, perRound, 0, "unused", CONCURRENCY);
        await switchAll(configuration.off, false);
        try {
          const run = await runBounded(load.deliveries.length, CONCURRENCY, async (i) => {
            await direct`select wa.ingest_webhook(${load.deliveries[i]!.body}::text::jsonb)`;
          });
          const rate = load.deliveries.length / (run.elapsedMs / 1000);
          best.set(configuration.name, Math.max(best.get(configuration.name) ?? 0, rate));
        } finally {
          await switchAll(configuration.off, true);
        }
      }
      best.set("floor", Math.max(best.get("floor") ?? 0, await floor()));
    }
  } finally {
    await direct`drop table if exists public.bench_floor`;
    await admin.end();
    await direct.end();
  }
  const shipped = best.get(CONFIGURATIONS[0]!.name)!;
  const lines = [
    `\`wa.ingest_webhook\` called directly, 1 message per POST, ${CONCURRENCY} in flight (best of ${rounds} ` +
    `alternating rounds of ${perRound}); each line switches one more guarantee off, so what it costs is the ` +
    "difference from the line above, in ms of the two cores per delivery:",
    "",
    "| configuration | deliveries/s | ms per delivery (2 cores) | vs as shipped |",
    "| --- | ---: | ---: | ---: |",
    ...[...CONFIGURATIONS.map((c) => c.name), "floor"].map((name) => {
      const rate = best.get(name)!;
      const label = name === "floor" ? "floor: a one-row idempotent upsert per call" : name;
      return `| ${label} | ${rate.toFixed(0)} | ${(2000 / rate).toFixed(2)} | ${
        (rate / shipped).toFixed(2)
      }× |`;
    }),
  ];
  return {
    title: "ingest: what each guarantee costs",
    markdown: lines.join("\n"),
    elapsedMs: performance.now() - started,
  };
}
