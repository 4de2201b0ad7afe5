// The one place product code reads the time or waits: everything else takes a Clock from its
// deps, so a test can run any of it on a clock of its own.
import process from "node:process";

export interface Clock {
  /** Milliseconds since the epoch. */
  now(): number;
  sleep(ms: number): Promise<void>;
  /**
   * CPU time this process has used, in ms (user and system). The platform's CPU limit counts
   * one request's; in a process serving several at once this counts them all, so a budget
   * kept against it is kept against the request's too.
   */
  cpuMs(): number;
}

export const wallClock: Clock = {
  now: () => Date.now(),
  sleep: (ms) => new Promise((r) => setTimeout(r, Math.max(0, ms))),
  cpuMs: () => {
    const { user, system } = process.cpuUsage();
    return (user + system) / 1000;
  },
};
