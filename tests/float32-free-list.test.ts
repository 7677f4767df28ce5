import { describe, expect, it } from "vitest";
import { ErrorCode } from "../common/errors.js";
import { Float32FreeList } from "../common/float32-free-list.js";
import { expectError } from "./helpers/expect-error.js";

describe("Float32FreeList", () => {
  it("hands a given-back array out again for the same length, and fresh ones otherwise", () => {
    const list = new Float32FreeList(1 << 20);
    const first = list.take(5000);
    expect(first).toHaveLength(5000);
    list.give(first);
    expect(list.bytes).toBe(20_000);
    expect(list.take(6000)).not.toBe(first);
    expect(list.take(5000)).toBe(first);
    expect(list.bytes).toBe(0);
    expect(list.take(5000)).not.toBe(first);
    expect(list.stats).toEqual({ allocated: 3, reused: 1 });
  });

  it("keeps no more than its byte cap, no short arrays, no views and no duplicates", () => {
    const list = new Float32FreeList(50_000);
    const [a, b, c] = [list.take(5000), list.take(5000), list.take(5000)];
    list.give(a);
    list.give(a);
    list.give(b);
    list.give(c); // 60,000 bytes would pass the cap
    expect(list.bytes).toBe(40_000);
    list.give(new Float32Array(100));
    list.give(new Float32Array(20_000).subarray(0, 5000));
    expect(list.bytes).toBe(40_000);
    const handedOut = new Set([list.take(5000), list.take(5000)]);
    expect(handedOut).toEqual(new Set([a, b]));
    expect(list.take(5000)).not.toBe(c);
  });

  it("refuses a negative or non-finite cap", () => {
    expectError(() => new Float32FreeList(-1), ErrorCode.INVALID_CONFIG, "maxKeptBytes");
    expectError(() => new Float32FreeList(Number.NaN), ErrorCode.INVALID_CONFIG, "maxKeptBytes");
  });
});
