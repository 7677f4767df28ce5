import { afterEach } from "vitest";

export type Cleanup = () => Promise<void> | void;

/** What a test pushes here is undone after it, last first, whether it passed or not. */
export function useCleanups(): Cleanup[] {
  const cleanups: Cleanup[] = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });
  return cleanups;
}
