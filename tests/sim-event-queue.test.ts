import { describe, expect, it } from "vitest";
import { createRng } from "../common/rng.js";
import { EventQueue } from "../scenarios/sim/event-queue.js";

describe("event queue", () => {
  it("pops events in simulated-time order, whatever order they were pushed in", () => {
    const q = new EventQueue<string>();
    q.push(5, "c", "five");
    q.push(1.5, "b", "one and a half");
    q.push(3, "a", "three");
    q.push(0, "z", "zero");
    expect(q.size).toBe(4);
    expect(q.peek()?.payload).toBe("zero");
    expect([q.pop(), q.pop(), q.pop(), q.pop()].map((e) => e?.at)).toEqual([0, 1.5, 3, 5]);
    expect(q.pop()).toBeUndefined();
    expect(q.size).toBe(0);
  });

  it("breaks ties in time by client id, then by insertion order", () => {
    const q = new EventQueue<number>();
    q.push(2, "client-b", 1);
    q.push(2, "client-a", 2);
    q.push(2, "client-b", 3);
    q.push(1, "client-c", 4);
    q.push(2, "client-a", 5);
    const order = [];
    while (q.size > 0) order.push(q.pop()!.payload);
    expect(order).toEqual([4, 2, 5, 1, 3]);
  });

  it("popUntil takes exactly the events at or before a time", () => {
    const q = new EventQueue<number>();
    for (const at of [4, 1, 3, 2, 3, 6]) q.push(at, "x", at);
    expect(q.popUntil(3).map((e) => e.at)).toEqual([1, 2, 3, 3]);
    expect(q.size).toBe(2);
    expect(q.popUntil(0)).toEqual([]);
  });

  it("matches a stable sort on long random sequences with many ties, interleaving pushes and pops", () => {
    const rng = createRng(42);
    const q = new EventQueue<number>();
    const pending: { at: number; clientId: string; payload: number }[] = [];
    const popped: number[] = [];
    const expected: number[] = [];
    const byKey = (a: (typeof pending)[0], b: (typeof pending)[0]) =>
      a.at - b.at ||
      (a.clientId < b.clientId ? -1 : a.clientId > b.clientId ? 1 : 0) ||
      a.payload - b.payload;
    for (let i = 0; i < 6_000; i++) {
      if (rng.next() < 0.6 || pending.length === 0) {
        // Coarse times and few ids, so ties on both keys are common.
        const event = { at: rng.int(50), clientId: `c${rng.int(8)}`, payload: i };
        q.push(event.at, event.clientId, event.payload);
        pending.push(event);
      } else {
        pending.sort(byKey);
        expected.push(pending.shift()!.payload);
        popped.push(q.pop()!.payload);
      }
    }
    pending.sort(byKey);
    expected.push(...pending.map((e) => e.payload));
    while (q.size > 0) popped.push(q.pop()!.payload);
    expect(popped).toEqual(expected);
  });

  it("refuses a time that is not a number", () => {
    const q = new EventQueue<null>();
    expect(() => q.push(Number.NaN, "a", null)).toThrow(/event time/);
    q.push(Number.POSITIVE_INFINITY, "never", null);
    expect(q.pop()?.clientId).toBe("never");
  });
});
