// `npm run bench -- profile` (issue 23): where the time of the hot paths goes, before tuning them, written to
// bench/results/profile.md for docs/performance.md. Not a speed benchmark: its figures are taken with every
// statement tracked and the CPU sampled, which slows what it measures; the other benchmarks give the speeds.
import { profileClaim } from "./profile/claim.ts";
import { profileGuarantees } from "./profile/guarantees.ts";
import { profileIngest } from "./profile/ingest.ts";
import { profileProcessor } from "./profile/processor.ts";
import type { ProfileSection } from "./profile/section.ts";
import { type BenchContext, type BenchResult, result } from "./lib.ts";
import { resultsDir } from "./report.ts";

const SECTIONS: ((ctx: BenchContext) => Promise<ProfileSection>)[] = [
  profileIngest,
  profileGuarantees,
  profileClaim,
  profileProcessor,
];

export async function profile(ctx: BenchContext): Promise<BenchResult> {
  const res = result("profile", { sections: SECTIONS.length });
  const parts: string[] = [];
  for (const section of SECTIONS) {
    const { title, markdown, elapsedMs } = await section(ctx);
    parts.push(`## ${title}\n\n${markdown}\n`);
    res.notes.push(`${title}: profiled in ${(elapsedMs / 1000).toFixed(1)} s`);
  }
  await Deno.writeTextFile(new URL("profile.md", resultsDir), parts.join("\n"));
  res.notes.push("the tables are in bench/results/profile.md");
  return res;
}
