import { describe, expect, it } from "vitest";
import { ErrorCode } from "../common/errors.js";
import { FedAvg } from "../common/strategy/fedavg.js";
import {
  assertExamplesInRange,
  assertNormInRange,
  DEFAULT_MAX_EXAMPLES_PER_CLIENT,
  DEFAULT_MAX_UPDATE_NORM,
  resolveClientLimits,
} from "../server/client-limits.js";
import { assertTotalWeightPlausible } from "../server/secagg-round.js";
import { expectError } from "./helpers/expect-error.js";

/** The pure checks behind the bounds on one client (the socket tests are in client-bounds.test.ts). */
describe("client limits", () => {
  const limits = resolveClientLimits({ maxExamplesPerClient: 1000, maxUpdateNorm: 5 });

  it("defaults both limits, and refuses ones that are not positive", () => {
    expect(resolveClientLimits()).toEqual({
      maxExamplesPerClient: DEFAULT_MAX_EXAMPLES_PER_CLIENT,
      maxUpdateNorm: DEFAULT_MAX_UPDATE_NORM,
    });
    expectError(
      () => resolveClientLimits({ maxExamplesPerClient: 0 }),
      ErrorCode.INVALID_CONFIG,
      "maxExamplesPerClient",
    );
    expectError(() => resolveClientLimits({ maxExamplesPerClient: 2.5 }), ErrorCode.INVALID_CONFIG);
    expectError(() => resolveClientLimits({ maxUpdateNorm: 0 }), ErrorCode.INVALID_CONFIG, "maxUpdateNorm");
    expectError(
      () => resolveClientLimits({ maxUpdateNorm: Number.POSITIVE_INFINITY }),
      ErrorCode.INVALID_CONFIG,
      "maxUpdateNorm",
    );
  });

  it("bounds numExamples by the cap, and by the size declared at hello when there is one", () => {
    expect(() => assertExamplesInRange(1000, undefined, limits)).not.toThrow();
    expectError(
      () => assertExamplesInRange(Number.MAX_SAFE_INTEGER, undefined, limits),
      ErrorCode.EXAMPLES_OUT_OF_RANGE,
      "maxExamplesPerClient (1000)",
    );
    expect(() => assertExamplesInRange(50, 50, limits)).not.toThrow();
    expectError(() => assertExamplesInRange(51, 50, limits), ErrorCode.EXAMPLES_OUT_OF_RANGE, "declared");
    // A declaration never raises the cap.
    expectError(
      () => assertExamplesInRange(2000, 5000, limits),
      ErrorCode.EXAMPLES_OUT_OF_RANGE,
      "maxExamplesPerClient",
    );
  });

  it("bounds the L2 norm of a delta", () => {
    expect(() => assertNormInRange(Float32Array.from([3, 4]), limits)).not.toThrow();
    expectError(
      () => assertNormInRange(Float32Array.from([3, 4.001]), limits),
      ErrorCode.NORM_TOO_LARGE,
      "5.001",
    );
    // Finite float32 values near FLT_MAX: their squares overflow float32 but not the float64 sum.
    expectError(
      () => assertNormInRange(Float32Array.from([3e38, -3e38]), resolveClientLimits()),
      ErrorCode.NORM_TOO_LARGE,
      "4.243e+38",
    );
  });
});

describe("the weight of an unmasked SecAgg sum", () => {
  it("must lie in [n, n·maxWeight] for n survivors", () => {
    expect(() => assertTotalWeightPlausible(3, 3, 100)).not.toThrow();
    expect(() => assertTotalWeightPlausible(300, 3, 100)).not.toThrow();
    expect(() => assertTotalWeightPlausible(150.0001, 2, 10_000)).not.toThrow();
    for (const total of [-9700, 0, 1, 301, Number.NaN]) {
      expectError(
        () => assertTotalWeightPlausible(total, 3, 100),
        ErrorCode.BAD_AGGREGATE,
        "outside [3, 300]",
      );
    }
  });

  it("never reaches FedAvg's division when it is not a positive number", () => {
    const fedavg = new FedAvg({ minFitClients: 1 });
    for (const totalWeight of [0, -5, Number.NaN, Number.POSITIVE_INFINITY]) {
      expectError(
        () =>
          fedavg.aggregateFit(
            1,
            new Float32Array(2),
            [],
            {
              kind: "sum",
              weightedDeltaSum: new Float32Array(2),
              totalWeight,
              count: 2,
              clientIds: ["a", "b"],
            },
            [],
          ),
        ErrorCode.BAD_AGGREGATE,
        "total weight",
      );
    }
  });
});
