// Readiness probes that arrive together share one database read.
import assert from "node:assert/strict";
import { singleFlight } from "./probe.ts";

Deno.test("singleFlight: calls made while one is in flight share it; the next call after it settles runs again", async () => {
  let calls = 0;
  let finish: (value: number) => void = () => {};
  const shared = singleFlight(() => {
    calls++;
    return new Promise<number>((resolve) => finish = resolve);
  });
  const together = [shared(), shared(), shared()];
  assert.equal(calls, 1);
  finish(7);
  assert.deepEqual(await Promise.all(together), [7, 7, 7]);
  const later = shared();
  assert.equal(calls, 2, "a settled probe is never reused: no stale answer");
  finish(8);
  assert.equal(await later, 8);
});

Deno.test("singleFlight: a failure is shared by the calls in flight, and the next call tries again", async () => {
  let calls = 0;
  const shared = singleFlight(() => Promise.reject(new Error(`failure ${++calls}`)));
  const together = await Promise.allSettled([shared(), shared()]);
  assert.deepEqual(together.map((r) => r.status === "rejected" && (r.reason as Error).message), [
    "failure 1",
    "failure 1",
  ]);
  await assert.rejects(shared(), /failure 2/);
});
