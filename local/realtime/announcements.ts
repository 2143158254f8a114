// The queue between the NOTIFY listener and delivery: announcements are drained in order, one batch at a
// time, and every announcement pushed is drained, also when several arrive in one socket read (postgres.js
// calls the listener for each of them synchronously) and a batch is dropped without any await.

export interface AnnouncementQueue<T> {
  push(item: T): void;
  /** Resolves once everything pushed so far is drained. */
  idle(): Promise<void>;
}

export function createAnnouncementQueue<T>(
  drain: (batch: T[]) => Promise<void> | void,
): AnnouncementQueue<T> {
  const pending: T[] = [];
  let running: Promise<void> | undefined;

  async function run(): Promise<void> {
    try {
      while (pending.length > 0) await drain(pending.splice(0));
    } finally {
      // Cleared in the same synchronous step as the last emptiness check: a push after it starts a new run.
      running = undefined;
    }
  }

  return {
    push(item) {
      pending.push(item);
      running ??= run();
    },
    async idle() {
      while (running) await running;
    },
  };
}
