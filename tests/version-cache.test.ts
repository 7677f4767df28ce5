import { describe, expect, it } from "vitest";
import { ErrorCode, FedsimError } from "../common/errors.js";
import { VersionCache } from "../server/edges/version-cache.js";

/** A fetch that records what it was asked for and answers when told to. */
function controlledFetch() {
  const asked: [number, string][] = [];
  const waiting: {
    version: number;
    key: string;
    resolve: (v: string) => void;
    reject: (e: Error) => void;
  }[] = [];
  const listeners: (() => void)[] = [];
  const fetch = (version: number, key: string) =>
    new Promise<string>((resolve, reject) => {
      asked.push([version, key]);
      waiting.push({ version, key, resolve, reject });
      for (const l of listeners.splice(0)) l();
    });
  /** Resolves once `n` fetches were made. */
  const untilAsked = (n: number): Promise<void> =>
    asked.length >= n
      ? Promise.resolve()
      : new Promise((resolve) => listeners.push(() => void untilAsked(n).then(resolve)));
  return { asked, waiting, fetch, untilAsked };
}

describe("an edge's model versions for asynchronous fits", () => {
  it("fetches a version once for all the fits that train on it, even while the fetch is under way", async () => {
    const { asked, waiting, fetch } = controlledFetch();
    const cache = new VersionCache(fetch);
    const first = cache.acquire(0, "fit-a");
    const second = cache.acquire(0, "fit-b");
    waiting[0].resolve("v0");
    expect(await first).toBe("v0");
    expect(await second).toBe("v0");
    expect(await cache.acquire(0, "fit-c")).toBe("v0");
    expect(asked).toEqual([[0, "fit-a"]]);
  });

  it("drops a version once no fit uses it and a newer one was seen, and keeps it while one does", async () => {
    const { waiting, fetch } = controlledFetch();
    const cache = new VersionCache(fetch);
    const v0 = cache.acquire(0, "a");
    waiting[0].resolve("v0");
    await v0;
    const v1 = cache.acquire(1, "b");
    waiting[1].resolve("v1");
    await v1;
    // Fit "a" still trains on version 0.
    expect(cache.held()).toEqual([0, 1]);
    cache.release(0);
    expect(cache.held()).toEqual([1]);
    // The newest version stays between its fits: the next fit may train on it too.
    cache.release(1);
    expect(cache.held()).toEqual([1]);
  });

  it("asks again in its own name when the fit that named the version ended, and fails on its own refusal", async () => {
    const { asked, waiting, fetch, untilAsked } = controlledFetch();
    const cache = new VersionCache(fetch);
    const a = cache.acquire(2, "gone");
    const b = cache.acquire(2, "live");
    waiting[0].reject(new FedsimError(ErrorCode.STALE_ROUND, "round 2 is not running"));
    await expect(a).rejects.toMatchObject({ code: ErrorCode.STALE_ROUND });
    await untilAsked(2);
    expect(asked).toEqual([
      [2, "gone"],
      [2, "live"],
    ]);
    waiting[1].reject(new FedsimError(ErrorCode.STALE_ROUND, "round 2 is not running"));
    await expect(b).rejects.toMatchObject({ code: ErrorCode.STALE_ROUND });
    expect(cache.held()).toEqual([]);
  });
});
