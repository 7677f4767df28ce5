import { describe, expect, it } from "vitest";
import { erfc, logAdd, logErfc, logSub } from "../common/dp/logmath.js";
import {
  computeRdp,
  DEFAULT_ORDERS,
  epsilonBalle,
  epsilonClassic,
  epsilonFloor,
  rdpOfSampledGaussian,
} from "../common/dp/rdp.js";
import { ErrorCode, FedsimError } from "../common/errors.js";

/** TF Privacy's compute_dp_sgd_privacy order list, for comparison with DEFAULT_ORDERS (Opacus'). */
const TF_PRIVACY_ORDERS = [
  1.25,
  1.5,
  1.75,
  2,
  2.25,
  2.5,
  3,
  3.5,
  4,
  4.5,
  ...Array.from({ length: 59 }, (_, i) => 5 + i),
  128,
  256,
  512,
];

const MNIST_Q = 256 / 60000;
/** TF Privacy's compute_dp_sgd_privacy: steps = ceil(epochs · N / batch). */
const mnistSteps = (epochs: number) => Math.ceil((epochs * 60000) / 256);

function expectRelative(actual: number, expected: number, tolerance: number): void {
  expect(Math.abs(actual - expected)).toBeLessThanOrEqual(tolerance * Math.max(Math.abs(expected), 1e-300));
}

function expectInvalid(attempt: () => unknown, field: string): void {
  try {
    attempt();
  } catch (err) {
    expect(err).toBeInstanceOf(FedsimError);
    expect((err as FedsimError).code).toBe(ErrorCode.INVALID_CONFIG);
    expect((err as FedsimError).message).toContain(field);
    return;
  }
  expect.unreachable(`expected an INVALID_CONFIG error naming ${field}`);
}

describe("log-space helpers and erfc", () => {
  // Reference values from scipy.special.erfc and 2·ndtr(−x√2) (log_ndtr), as Opacus uses.
  const reference: [number, number][] = [
    [-3, 0.6931361352504468],
    [-1, 0.6112323176780705],
    [-0.3, 0.28414589714140825],
    [0, 0],
    [0.2, -0.25193223378261687],
    [0.5, -0.7350111298370848],
    [1, -1.849605509933249],
    [1.9, -4.93234586278027],
    [2, -5.36494126461664],
    [2.1, -5.816010968867557],
    [3, -10.720363041981116],
    [5, -27.200889545537446],
    [10, -102.87988902484493],
    [30, -903.9741171106442],
    [100, -10005.177585122668],
  ];

  it("logErfc matches scipy to 1e-13 across the line, including where erfc underflows", () => {
    for (const [x, expected] of reference) {
      expect(Math.abs(logErfc(x) - expected)).toBeLessThan(1e-13 * Math.max(1, Math.abs(expected)));
    }
  });

  it("erfc matches known values to 1e-13 relative", () => {
    expectRelative(erfc(1), 0.15729920705028516, 1e-13);
    expectRelative(erfc(2), 0.004677734981047266, 1e-13);
    expectRelative(erfc(3), 2.2090496998585445e-5, 1e-13);
    expectRelative(erfc(5), 1.5374597944280347e-12, 1e-13);
    expectRelative(erfc(10), 2.0884875837625446e-45, 1e-13);
    expectRelative(erfc(-1), 1.8427007929497148, 1e-13);
    expect(erfc(0)).toBe(1);
    expect(erfc(Number.POSITIVE_INFINITY)).toBe(0);
    expect(erfc(Number.NEGATIVE_INFINITY)).toBe(2);
  });

  it("logAdd and logSub", () => {
    expect(logAdd(Math.log(2), Math.log(3))).toBeCloseTo(Math.log(5), 14);
    expect(logAdd(Number.NEGATIVE_INFINITY, 1.5)).toBe(1.5);
    expect(logAdd(1000, 1000)).toBeCloseTo(1000 + Math.LN2, 10);
    expect(logSub(Math.log(5), Math.log(3))).toBeCloseTo(Math.log(2), 14);
    expect(logSub(2, Number.NEGATIVE_INFINITY)).toBe(2);
    expect(logSub(2, 2)).toBe(Number.NEGATIVE_INFINITY);
    expect(logSub(1000, 1)).toBe(1000);
    expect(() => logSub(1, 2)).toThrow();
  });
});

describe("RDP of the sampled Gaussian", () => {
  it("uses Opacus' default orders", () => {
    expect(DEFAULT_ORDERS.length).toBe(151);
    expect(DEFAULT_ORDERS[0]).toBeCloseTo(1.1, 12);
    expect(DEFAULT_ORDERS[98]).toBeCloseTo(10.9, 12);
    expect(DEFAULT_ORDERS.slice(99)).toEqual(Array.from({ length: 52 }, (_, i) => 12 + i));
  });

  it("matches Opacus' _compute_rdp per step at integer and fractional orders", () => {
    // [q, σ, α, RDP] from Opacus' algorithm run under scipy.
    const cases: [number, number, number, number][] = [
      [0.04, 1.5, 1.5, 0.0006631116940563884],
      [0.04, 1.5, 2.3, 0.0010369492032680015],
      [0.04, 1.5, 7.7, 0.0040676354105709],
      [0.04, 1.5, 10.9, 0.006591672068071702],
      [0.04, 1.5, 3, 0.00137687239217031],
      [0.04, 1.5, 17, 0.38074429185373715],
      [0.04, 1.5, 63, 10.729206823144093],
      [MNIST_Q, 1.12, 1.5, 1.6587866006251938e-5],
      [MNIST_Q, 1.12, 7.7, 8.926435938229816e-5],
      [MNIST_Q, 1.12, 63, 19.56666986876594],
      [0.3, 0.7, 1.5, 0.25595572639898845],
      [0.3, 0.7, 10.9, 9.796862765005168],
      [0.3, 0.7, 63, 63.062322565189554],
    ];
    for (const [q, sigma, alpha, expected] of cases)
      expectRelative(rdpOfSampledGaussian(q, sigma, alpha), expected, 1e-9);
  });

  it("q = 1 is the plain Gaussian α/(2σ²); q = 0 is free", () => {
    const rdp = computeRdp(1, 2, 3, [2, 5.5, 32]);
    expect(rdp[0]).toBeCloseTo((3 * 2) / 8, 12);
    expect(rdp[1]).toBeCloseTo((3 * 5.5) / 8, 12);
    expect(rdp[2]).toBeCloseTo((3 * 32) / 8, 12);
    expect(computeRdp(0, 1, 100)).toEqual(DEFAULT_ORDERS.map(() => 0));
    expect(epsilonClassic(DEFAULT_ORDERS, computeRdp(0, 1, 100), 1e-5).epsilon).toBe(0);
    expect(epsilonBalle(DEFAULT_ORDERS, computeRdp(0.5, 1, 0), 1e-5).epsilon).toBe(0);
  });

  it("scales linearly with steps and grows with q, shrinks with σ", () => {
    const one = computeRdp(0.04, 1.5, 1);
    const many = computeRdp(0.04, 1.5, 2250);
    for (let k = 0; k < one.length; k++) expectRelative(many[k], one[k] * 2250, 1e-12);
    const moreSampling = computeRdp(0.08, 1.5, 1);
    const moreNoise = computeRdp(0.04, 3, 1);
    for (let k = 0; k < one.length; k++) {
      expect(moreSampling[k]).toBeGreaterThan(one[k]);
      expect(moreNoise[k]).toBeLessThan(one[k]);
    }
  });

  it("refuses invalid parameters by name", () => {
    expectInvalid(() => computeRdp(1.5, 1, 1), "samplingRate");
    expectInvalid(() => computeRdp(-0.1, 1, 1), "samplingRate");
    expectInvalid(() => computeRdp(0.1, -1, 1), "noiseMultiplier");
    expectInvalid(() => computeRdp(0.1, 1, 2.5), "steps");
    expectInvalid(() => computeRdp(0.1, 1, -1), "steps");
    expectInvalid(() => computeRdp(0.1, 1, 1, [1, 2]), "orders");
    expectInvalid(() => epsilonClassic([2, 3], [0.1, 0.2], 0), "delta");
    expectInvalid(() => epsilonBalle([2, 3], [0.1, 0.2], 1), "delta");
    expectInvalid(() => epsilonClassic([2, 3], [0.1], 1e-5), "rdp");
  });
});

describe("RDP → (ε, δ)", () => {
  it("q=0.04, σ=1.5, 2250 steps, δ=1e-5: ε = 8.07 classic and 7.329 Balle", () => {
    const rdp = computeRdp(0.04, 1.5, 2250);
    const classic = epsilonClassic(DEFAULT_ORDERS, rdp, 1e-5);
    const balle = epsilonBalle(DEFAULT_ORDERS, rdp, 1e-5);
    expect(Math.abs(classic.epsilon - 8.07)).toBeLessThan(0.01);
    expect(classic.order).toBeCloseTo(4.1, 12);
    expect(Math.abs(balle.epsilon - 7.329)).toBeLessThan(0.001);
    expect(balle.order).toBeCloseTo(3.9, 12);
  });

  it("TF Privacy MNIST points (N=60000, batch 256, δ=1e-5, classic)", () => {
    const sixtyEpochs = epsilonClassic(DEFAULT_ORDERS, computeRdp(MNIST_Q, 1.12, mnistSteps(60)), 1e-5);
    expect(mnistSteps(60)).toBe(14063);
    expect(Math.abs(sixtyEpochs.epsilon - 2.92)).toBeLessThan(0.01);
    const tenEpochs = epsilonClassic(DEFAULT_ORDERS, computeRdp(MNIST_Q, 1.2, mnistSteps(10)), 1e-5);
    expect(Math.abs(tenEpochs.epsilon - 1.2)).toBeLessThan(0.01);
  });

  it("TF Privacy's own order list gives the same reference numbers to 0.01", () => {
    const at = (q: number, sigma: number, steps: number) =>
      epsilonClassic(TF_PRIVACY_ORDERS, computeRdp(q, sigma, steps, TF_PRIVACY_ORDERS), 1e-5).epsilon;
    expect(Math.abs(at(0.04, 1.5, 2250) - 8.07)).toBeLessThan(0.01);
    expect(Math.abs(at(MNIST_Q, 1.12, mnistSteps(60)) - 2.92)).toBeLessThan(0.01);
    expect(Math.abs(at(MNIST_Q, 1.2, mnistSteps(10)) - 1.2)).toBeLessThan(0.01);
  });

  it("classic is min over α of RDP + ln(1/δ)/(α−1), checked by hand on two orders", () => {
    const result = epsilonClassic([2, 11], [1, 0.5], 1e-3);
    // α=2: 1 + 6.9078/1 = 7.9078; α=11: 0.5 + 6.9078/10 = 1.1908.
    expect(result.order).toBe(11);
    expect(result.epsilon).toBeCloseTo(0.5 + Math.log(1000) / 10, 12);
  });

  it("Balle is never looser than classic, and ignores NaN orders", () => {
    const rdp = computeRdp(0.01, 1, 1000);
    expect(epsilonBalle(DEFAULT_ORDERS, rdp, 1e-6).epsilon).toBeLessThan(
      epsilonClassic(DEFAULT_ORDERS, rdp, 1e-6).epsilon,
    );
    const withNaN = epsilonBalle([2, 3], [Number.NaN, 0.5], 1e-5);
    expect(withNaN.order).toBe(3);
    expect(epsilonBalle([2, 3], [Number.NaN, Number.NaN], 1e-5)).toEqual({
      epsilon: Number.POSITIVE_INFINITY,
      order: Number.NaN,
    });
  });

  it("the floor is ln(1/δ)/(α_max − 1) for classic", () => {
    expect(epsilonFloor(DEFAULT_ORDERS, 1e-5, "classic")).toBeCloseTo(Math.log(1e5) / 62, 12);
    expect(epsilonFloor(DEFAULT_ORDERS, 1e-5, "balle")).toBeLessThan(
      epsilonFloor(DEFAULT_ORDERS, 1e-5, "classic"),
    );
  });
});
