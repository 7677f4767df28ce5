import { describe, expect, it } from "vitest";
import { bytesToVector, chooseScale, quantize } from "../common/crypto/secagg/index.js";
import { driveThroughShareKeys } from "./secagg-helpers.js";

const LENGTH = 20_000;

function pearson(x: ArrayLike<number>, y: ArrayLike<number>): number {
  const n = x.length;
  let mx = 0;
  let my = 0;
  for (let i = 0; i < n; i++) {
    mx += x[i];
    my += y[i];
  }
  mx /= n;
  my /= n;
  let sxy = 0;
  let sxx = 0;
  let syy = 0;
  for (let i = 0; i < n; i++) {
    const dx = x[i] - mx;
    const dy = y[i] - my;
    sxy += dx * dy;
    sxx += dx * dx;
    syy += dy * dy;
  }
  return sxy / Math.sqrt(sxx * syy);
}

/** Chi-square statistic of the top 3 bits against a uniform distribution over 8 buckets. */
function chiSquareTopBits(values: Uint32Array): number {
  const counts = new Array<number>(8).fill(0);
  for (const v of values) counts[v >>> 29]++;
  const expected = values.length / 8;
  return counts.reduce((acc, c) => acc + (c - expected) ** 2 / expected, 0);
}

/** A strongly structured update: a slow ramp plus a sine, quantised as a client would. */
function structuredInput(): { quantised: Uint32Array; signed: Int32Array } {
  const floats = Float32Array.from(
    { length: LENGTH },
    (_, i) => (i / LENGTH - 0.5) * 1.6 + 0.3 * Math.sin(i / 50),
  );
  const quantised = quantize(floats, { clipRange: 1, scale: chooseScale(1, 3) });
  return { quantised, signed: new Int32Array(quantised.buffer) };
}

describe("one client's masked vector reveals nothing on its own", () => {
  it("is uncorrelated with the input and uniform over 2^32", async () => {
    const { quantised, signed } = structuredInput();
    // Sanity: the input itself is far from uniform and correlated with itself, so the checks can fail.
    expect(chiSquareTopBits(quantised)).toBeGreaterThan(1000);
    expect(pearson(signed, quantised)).not.toBe(0);

    const round = await driveThroughShareKeys(["alice", "bob", "carol"]);
    const masked = bytesToVector(
      round.clients.get("alice")!.maskedInput(round.routed.alice, quantised).masked,
    );
    // |r| < 0.05 is about 7 standard errors at 20k coordinates: a real leak, not noise, fails it.
    expect(Math.abs(pearson(signed, masked))).toBeLessThan(0.05);
    expect(Math.abs(pearson(quantised, masked))).toBeLessThan(0.05);
    // 7 degrees of freedom: 40 is beyond p = 1e-6 for a uniform vector.
    expect(chiSquareTopBits(masked)).toBeLessThan(40);
    let unchanged = 0;
    for (let i = 0; i < LENGTH; i++) if (masked[i] === quantised[i]) unchanged++;
    expect(unchanged).toBeLessThan(5);
  });

  it("the same input masked in two rounds gives unrelated vectors (fresh keys and seeds)", async () => {
    const { quantised } = structuredInput();
    const ids = ["alice", "bob", "carol"];
    const first = await driveThroughShareKeys(ids, { round: 1 });
    const second = await driveThroughShareKeys(ids, { round: 2 });
    const a = bytesToVector(first.clients.get("bob")!.maskedInput(first.routed.bob, quantised).masked);
    const b = bytesToVector(second.clients.get("bob")!.maskedInput(second.routed.bob, quantised).masked);
    expect(Math.abs(pearson(a, b))).toBeLessThan(0.05);
    const difference = new Uint32Array(LENGTH);
    for (let i = 0; i < LENGTH; i++) difference[i] = a[i] - b[i];
    expect(chiSquareTopBits(difference)).toBeLessThan(40);
  });
});
