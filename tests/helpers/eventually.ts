import { vi } from "vitest";

/**
 * How long a test waits for something that must happen: an ack, a disconnect reaching the
 * server, a log line. Only a hang should use it up. vi.waitFor's own default gives up after a
 * second, which a loaded 2-core machine can spend on one turn of the event loop.
 */
export const PATIENCE_MS = 60_000;

/** Retries `check` until it stops throwing, for as long as a busy machine may need. */
export function eventually<T>(check: () => T | Promise<T>): Promise<T> {
  return vi.waitFor(check, { timeout: PATIENCE_MS, interval: 20 });
}
