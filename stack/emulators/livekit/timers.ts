/**
 * Every timer the emulator starts goes through one Scheduler, so reset() and close()
 * can cancel them all and no timer outlives the server.
 */
export class Scheduler {
  #timers = new Set<ReturnType<typeof setTimeout>>();
  #sleepers = new Set<(elapsed: boolean) => void>();

  /** Runs `fn` after `ms`; returns a function that cancels it. */
  after(ms: number, fn: () => void): () => void {
    const id = setTimeout(() => {
      this.#timers.delete(id);
      fn();
    }, Math.max(0, ms));
    this.#timers.add(id);
    return () => {
      clearTimeout(id);
      this.#timers.delete(id);
    };
  }

  /** Resolves true after `ms`, or false as soon as cancelAll() runs. */
  sleep(ms: number): Promise<boolean> {
    if (ms <= 0) return Promise.resolve(true);
    return new Promise((resolve) => {
      const wake = (elapsed: boolean) => {
        this.#sleepers.delete(wake);
        cancel();
        resolve(elapsed);
      };
      const cancel = this.after(ms, () => wake(true));
      this.#sleepers.add(wake);
    });
  }

  cancelAll(): void {
    for (const id of this.#timers) clearTimeout(id);
    this.#timers.clear();
    for (const wake of [...this.#sleepers]) wake(false);
  }
}
