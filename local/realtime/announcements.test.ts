import assert from "node:assert/strict";
import { createAnnouncementQueue } from "./announcements.ts";

Deno.test("announcements: a push in the same tick as a batch dropped without awaiting is drained too", async () => {
  const drained: number[][] = [];
  // The first batch is dropped synchronously (nobody listens to its topic), as delivery does.
  const queue = createAnnouncementQueue<number>((batch) => {
    drained.push(batch);
    return batch.includes(1) ? undefined : Promise.resolve();
  });
  queue.push(1);
  queue.push(2);
  await queue.idle();
  assert.deepEqual(drained, [[1], [2]]);
});

Deno.test("announcements: pushes during a drain form the next batch, in order", async () => {
  const drained: number[][] = [];
  let release!: () => void;
  const gate = new Promise<void>((resolve) => release = resolve);
  const queue = createAnnouncementQueue<number>(async (batch) => {
    drained.push(batch);
    if (batch[0] === 1) await gate;
  });
  queue.push(1);
  queue.push(2);
  queue.push(3);
  release();
  await queue.idle();
  assert.deepEqual(drained, [[1], [2, 3]]);
});
