import { describe, expect, it } from "vitest";
import { ErrorCode } from "../common/errors.js";
import {
  computeSeconds,
  dropoutDelaySeconds,
  fitPhases,
  measureSecondsPerExample,
  transferSeconds,
} from "../scenarios/sim/fit-duration.js";
import { expectError } from "./helpers/expect-error.js";

describe("fit duration", () => {
  it("matches the three-part formula computed by hand", () => {
    // A 2NN-sized payload (199,210 float32 = 796,840 bytes) over 20 Mbit/s down, 5 up, 40 ms.
    const phases = fitPhases(
      { downlinkMbps: 20, uplinkMbps: 5, latencyMs: 40, speed: 0.5, secondsPerExample: 0.002 },
      { bytesDown: 796_840, bytesUp: 796_840, examples: 600, epochs: 5 },
    );
    // download: 0.04 + 796840·8 / 20e6 = 0.04 + 0.318736
    expect(phases.download).toBeCloseTo(0.358736, 12);
    // compute: 600 · 5 · 0.002 / 0.5 = 12
    expect(phases.compute).toBeCloseTo(12, 12);
    // upload: 0.04 + 796840·8 / 5e6 = 0.04 + 1.274944
    expect(phases.upload).toBeCloseTo(1.314944, 12);
    expect(phases.total).toBeCloseTo(0.358736 + 12 + 1.314944, 12);
  });

  it("each part on its own", () => {
    expect(transferSeconds(1_000_000, 8, 0)).toBe(1);
    expect(transferSeconds(0, 8, 250)).toBe(0.25);
    expect(computeSeconds(100, 2, 0.01, 4)).toBeCloseTo(0.5, 12);
    expect(computeSeconds(0, 2, 0.01, 4)).toBe(0);
  });

  it("refuses impossible devices and work with a typed error naming the field", () => {
    expectError(() => transferSeconds(10, 0, 0), ErrorCode.INVALID_CONFIG, "link rate");
    expectError(() => transferSeconds(-1, 1, 0), ErrorCode.INVALID_CONFIG, "bytes");
    expectError(() => computeSeconds(10, 1, 0.1, 0), ErrorCode.INVALID_CONFIG, "speed");
    expectError(() => computeSeconds(10, Number.NaN, 0.1, 1), ErrorCode.INVALID_CONFIG, "epochs");
  });

  it("dropout delay is the exponential's inverse CDF, and never for a zero hazard", () => {
    // P(drop within t) = 1 − e^(−λt): u = e^(−1) puts the drop at exactly one mean lifetime.
    expect(dropoutDelaySeconds(2, Math.exp(-1))).toBeCloseTo(1800, 9);
    expect(dropoutDelaySeconds(0, 0.3)).toBe(Number.POSITIVE_INFINITY);
    expectError(() => dropoutDelaySeconds(-1, 0.5), ErrorCode.INVALID_CONFIG, "dropoutPerHour");
  });

  it("measures seconds per example as the median over timed calls, after warm-up", async () => {
    let clock = 0;
    const calls: number[] = [];
    // Each call costs 2 ms per example, except one slow outlier that the median ignores.
    const costs = [999, 2, 50, 2];
    const train = (k: number) => {
      calls.push(k);
      clock += (costs[calls.length - 1] ?? 2) * k;
    };
    const spe = await measureSecondsPerExample(train, {
      examples: 10,
      warmup: 1,
      repeats: 3,
      now: () => clock,
    });
    expect(calls).toEqual([10, 10, 10, 10]);
    expect(spe).toBeCloseTo(0.002, 12);
  });

  it("awaits an asynchronous training callback", async () => {
    let clock = 0;
    const spe = await measureSecondsPerExample(
      async (k) => {
        await Promise.resolve();
        clock += 5 * k;
      },
      { examples: 4, warmup: 0, repeats: 2, now: () => clock },
    );
    expect(spe).toBeCloseTo(0.005, 12);
  });
});
