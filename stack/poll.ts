// Bounded polling: how tests, fixtures and benchmarks wait for something to become true. Every
// wait ends, with an error naming what was waited for.

export type Maybe<T> = T | null | undefined | false;

/** Polls `check` every `everyMs` until it returns something truthy (returned) or `timeoutMs` passes. */
export async function eventually<T>(
  check: () => Maybe<T> | Promise<Maybe<T>>,
  what: string,
  timeoutMs = 30_000,
  everyMs = 50,
): Promise<T> {
  const until = performance.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v) return v;
    if (performance.now() + everyMs > until) {
      throw new Error(`timed out after ${timeoutMs / 1000} s waiting for ${what}`);
    }
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
