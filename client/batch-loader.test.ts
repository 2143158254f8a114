// The loader's contract: one promise per key in flight, one fetchMany per tick (split at maxBatch), answers
// reused for the TTL and never when they failed, and no unhandled rejection whatever fails.
import assert from "node:assert/strict";
import { createBatchLoader, type FetchMany } from "./batch-loader.ts";

let unhandled = 0;
globalThis.addEventListener("unhandledrejection", (event) => {
  unhandled++;
  event.preventDefault();
});

/** Runs after every promise job and timer already queued, so any unhandled rejection has been reported. */
function settled(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 0));
}

/** A fetchMany recording its calls that answers `value:<key>` for every key but those in `missing`. */
function recorder(missing: ReadonlySet<string> = new Set()) {
  const calls: string[][] = [];
  const fetchMany: FetchMany<string, string> = (keys) => {
    calls.push([...keys]);
    return Promise.resolve(
      new Map(keys.filter((key) => !missing.has(key)).map((key) => [key, `value:${key}`])),
    );
  };
  return { calls, fetchMany };
}

Deno.test("loader: 2,146 concurrent loads of one key share one fetch and one promise", async () => {
  const { calls, fetchMany } = recorder();
  const loader = createBatchLoader(fetchMany);
  const values = await Promise.all(Array.from({ length: 2146 }, () => loader.load("ana")));
  assert.equal(calls.length, 1);
  assert.deepEqual(calls[0], ["ana"]);
  assert.ok(values.every((value) => value === "value:ana"));
});

Deno.test("loader: distinct keys of one tick go in one call, split at maxBatch", async () => {
  const { calls, fetchMany } = recorder();
  const loader = createBatchLoader(fetchMany, { maxBatch: 100 });
  const keys = Array.from({ length: 2146 }, (_, i) => `user-${i}`);
  const values = await Promise.all(keys.map((key) => loader.load(key)));
  assert.equal(calls.length, Math.ceil(2146 / 100));
  assert.ok(calls.slice(0, -1).every((call) => call.length === 100));
  assert.equal(calls.at(-1)!.length, 46);
  assert.deepEqual(calls.flat(), keys, "every key asked once, in order");
  assert.deepEqual(values, keys.map((key) => `value:${key}`), "every load gets its own key's value");

  await Promise.all([loader.load("a"), loader.load("b")]);
  await loader.load("c");
  assert.deepEqual(calls.slice(-2), [["a", "b"], ["c"]], "a later tick is a new batch");
});

Deno.test("loader: the default maxBatch is 100", async () => {
  const { calls, fetchMany } = recorder();
  const loader = createBatchLoader(fetchMany);
  await Promise.all(Array.from({ length: 250 }, (_, i) => loader.load(`k${i}`)));
  assert.deepEqual(calls.map((call) => call.length), [100, 100, 50]);
});

Deno.test("loader: answers are reused for ttlMs after they arrive, then fetched again", async () => {
  let now = 1_000;
  const { calls, fetchMany } = recorder();
  const loader = createBatchLoader(fetchMany, { ttlMs: 30_000, now: () => now });
  await loader.load("ana");
  now += 29_999;
  await loader.load("ana");
  assert.equal(calls.length, 1);
  now += 1;
  await loader.load("ana");
  assert.equal(calls.length, 2);
});

Deno.test("loader: the TTL counts from the answer, and an in-flight request is shared whatever its age", async () => {
  let now = 0;
  let answer: (() => void) | undefined;
  const calls: string[][] = [];
  const loader = createBatchLoader<string, string>((keys) => {
    calls.push([...keys]);
    return new Promise((resolve) => answer = () => resolve(keys.map((key) => `value:${key}`)));
  }, { ttlMs: 1_000, now: () => now });
  const first = loader.load("ana");
  await settled();
  now += 5_000;
  const second = loader.load("ana");
  answer!();
  assert.deepEqual(await Promise.all([first, second]), ["value:ana", "value:ana"]);
  now += 999;
  await loader.load("ana");
  assert.equal(calls.length, 1);
});

Deno.test("loader: ttlMs 0 shares only what is in flight", async () => {
  const { calls, fetchMany } = recorder();
  const loader = createBatchLoader(fetchMany, { ttlMs: 0 });
  await Promise.all([loader.load("ana"), loader.load("ana")]);
  await loader.load("ana");
  assert.deepEqual(calls, [["ana"], ["ana"]]);
});

Deno.test("loader: invalidate forgets one key, or all of them", async () => {
  const { calls, fetchMany } = recorder();
  const loader = createBatchLoader(fetchMany);
  await Promise.all([loader.load("a"), loader.load("b")]);
  loader.invalidate("a");
  await Promise.all([loader.load("a"), loader.load("b")]);
  assert.deepEqual(calls, [["a", "b"], ["a"]]);
  loader.invalidate();
  await Promise.all([loader.load("a"), loader.load("b")]);
  assert.deepEqual(calls.at(-1), ["a", "b"]);
});

Deno.test("loader: prime stores a value, replacing a cached one", async () => {
  const { calls, fetchMany } = recorder();
  const loader = createBatchLoader(fetchMany);
  loader.prime("a", "primed");
  assert.equal(await loader.load("a"), "primed");
  await loader.load("b");
  loader.prime("b", "fresher");
  assert.equal(await loader.load("b"), "fresher");
  assert.deepEqual(calls, [["b"]]);
});

Deno.test("loader: a key missing from the answer resolves to null, and null is cached like a value", async () => {
  const { calls, fetchMany } = recorder(new Set(["ghost"]));
  const loader = createBatchLoader(fetchMany);
  assert.deepEqual(await Promise.all([loader.load("ana"), loader.load("ghost")]), ["value:ana", null]);
  assert.equal(await loader.load("ghost"), null);
  assert.equal(calls.length, 1);

  const arrays = createBatchLoader<string, number>((keys) => Promise.resolve(keys.map(() => undefined)));
  assert.equal(await arrays.load("x"), null, "undefined in an array answer is null too");
});

Deno.test("loader: a per-key Error rejects only that key and is not cached", async () => {
  let fail = true;
  const calls: string[][] = [];
  const loader = createBatchLoader<string, string>((keys) => {
    calls.push([...keys]);
    return Promise.resolve(
      keys.map((key) => key === "bad" && fail ? new Error(`no ${key}`) : `value:${key}`),
    );
  });
  const [good, bad] = await Promise.allSettled([loader.load("good"), loader.load("bad")]);
  assert.deepEqual(good, { status: "fulfilled", value: "value:good" });
  assert.equal(bad.status, "rejected");
  assert.equal((bad as PromiseRejectedResult).reason.message, "no bad");
  fail = false;
  assert.equal(await loader.load("bad"), "value:bad");
  assert.equal(await loader.load("good"), "value:good");
  assert.deepEqual(calls, [["good", "bad"], ["bad"]]);
  await settled();
  assert.equal(unhandled, 0);
});

Deno.test("loader: a failing fetchMany rejects its batch, caches nothing, and the next load retries", async () => {
  let failures = 1;
  const calls: string[][] = [];
  const loader = createBatchLoader<string, string>((keys) => {
    calls.push([...keys]);
    if (failures-- > 0) return Promise.reject(new Error("network down"));
    return Promise.resolve(keys.map((key) => `value:${key}`));
  });
  const results = await Promise.allSettled(Array.from({ length: 50 }, () => loader.load("ana")));
  assert.ok(
    results.every((result) => result.status === "rejected" && result.reason.message === "network down"),
  );
  assert.equal(await loader.load("ana"), "value:ana");
  assert.deepEqual(calls, [["ana"], ["ana"]]);
  await settled();
  assert.equal(unhandled, 0);
});

Deno.test("loader: a wrong-length answer fails the batch instead of misassigning values", async () => {
  const loader = createBatchLoader<string, string>(() => Promise.resolve(["only one"]));
  await assert.rejects(Promise.all([loader.load("a"), loader.load("b")]), /answered 1 values for 2 keys/);
});

Deno.test("loader: loadMany returns each key's value, null or Error without rejecting", async () => {
  const loader = createBatchLoader<string, string>((keys) =>
    Promise.resolve(keys.map((key) => key === "bad" ? new Error("bad") : key === "ghost" ? null : key))
  );
  const [a, ghost, bad] = await loader.loadMany(["a", "ghost", "bad"]);
  assert.equal(a, "a");
  assert.equal(ghost, null);
  assert.ok(bad instanceof Error);
  await settled();
  assert.equal(unhandled, 0);
});

Deno.test("loader: cacheKey lets object keys share entries and match a Map answer", async () => {
  interface Key {
    team: string;
    id: string;
  }
  const calls: Key[][] = [];
  const loader = createBatchLoader<Key, string>((keys) => {
    calls.push([...keys]);
    // Answered with fresh key objects: matched through cacheKey, not identity.
    return Promise.resolve(new Map(keys.map((key) => [{ ...key }, `${key.team}/${key.id}`])));
  }, { cacheKey: (key) => `${key.team}:${key.id}` });
  const values = await Promise.all([
    loader.load({ team: "t", id: "1" }),
    loader.load({ team: "t", id: "1" }),
  ]);
  assert.deepEqual(values, ["t/1", "t/1"]);
  assert.equal(calls.length, 1);
  assert.equal(calls[0]!.length, 1);
});

Deno.test("loader: invalid options and keys are refused", async () => {
  const { fetchMany } = recorder();
  assert.throws(() => createBatchLoader(fetchMany, { maxBatch: 0 }), RangeError);
  assert.throws(() => createBatchLoader(fetchMany, { ttlMs: -1 }), RangeError);
  const loader = createBatchLoader<string | null, string>(() => Promise.resolve([]));
  await assert.rejects(loader.load(null), TypeError);
});

Deno.test("loader: nothing above left an unhandled rejection", async () => {
  await settled();
  assert.equal(unhandled, 0);
});
