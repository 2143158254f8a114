// The database reads behind readiness and the figures. Readiness reads only public.ops_readiness (by index,
// none of the hour's counts) and is shared by every call that arrives while one is in flight, so any number
// of unauthenticated probes costs the database at most one query at a time per isolate.
import { timeout, TimeoutStrategy } from "cockatiel";
import { db } from "../_shared/db.ts";
import { errorMessage } from "../_shared/log.ts";
import {
  type OpsMetrics,
  type Readiness,
  type ReadinessFigures,
  readinessFrom,
  unreachable,
} from "./readiness.ts";

// A probe that hangs is as bad as one that fails: answer within this budget.
const probeTimeout = timeout(3_000, TimeoutStrategy.Aggressive);

/** The figures one query selects as `figures`, within the probe budget. */
async function read<T>(query: () => Promise<{ figures: T }[]>): Promise<T> {
  return await probeTimeout.execute(async () => {
    const [row] = await query();
    if (row === undefined) throw new Error("the figures query returned no row");
    return row.figures;
  });
}

/** Readiness from the cheap figures; an unreachable database is a failed check, never a throw. */
export async function probeReadiness(dbUrl: string, maxOverdueSeconds: number): Promise<Readiness> {
  try {
    return readinessFrom(
      await read(() => db(dbUrl)<{ figures: ReadinessFigures }[]>`select public.ops_readiness() as figures`),
      maxOverdueSeconds,
    );
  } catch (error) {
    return unreachable(errorMessage(error));
  }
}

/** Every figure and the readiness decided from them; metrics null when the database could not be read. */
export async function probeMetrics(
  dbUrl: string,
  maxOverdueSeconds: number,
): Promise<{ readiness: Readiness; metrics: OpsMetrics | null }> {
  try {
    const metrics = await read(() =>
      db(dbUrl)<{ figures: OpsMetrics }[]>`select public.ops_metrics() || public.call_metrics() as figures`
    );
    return { readiness: readinessFrom(metrics, maxOverdueSeconds), metrics };
  } catch (error) {
    return { readiness: unreachable(errorMessage(error)), metrics: null };
  }
}

/** `fn`, with the calls made while one is in flight sharing its result instead of starting another. */
export function singleFlight<T>(fn: () => Promise<T>): () => Promise<T> {
  let inFlight: Promise<T> | undefined;
  return () => {
    inFlight ??= fn().finally(() => {
      inFlight = undefined;
    });
    return inFlight;
  };
}
