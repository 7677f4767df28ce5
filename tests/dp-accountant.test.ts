import { describe, expect, it } from "vitest";
import { computeEpsilon, noiseForTargetEpsilon, RdpAccountant } from "../common/dp/accountant.js";
import { ErrorCode, FedsimError } from "../common/errors.js";

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

const MNIST_Q = 256 / 60000;

describe("computeEpsilon", () => {
  it("reproduces the reference points", () => {
    const base = { samplingRate: 0.04, noiseMultiplier: 1.5, steps: 2250, delta: 1e-5 };
    expect(Math.abs(computeEpsilon(base).epsilon - 8.07)).toBeLessThan(0.01);
    expect(Math.abs(computeEpsilon({ ...base, conversion: "balle" }).epsilon - 7.329)).toBeLessThan(0.001);
    const mnist = { samplingRate: MNIST_Q, delta: 1e-5 };
    const sixty = computeEpsilon({ ...mnist, noiseMultiplier: 1.12, steps: Math.ceil((60 * 60000) / 256) });
    expect(Math.abs(sixty.epsilon - 2.92)).toBeLessThan(0.01);
    const ten = computeEpsilon({ ...mnist, noiseMultiplier: 1.2, steps: Math.ceil((10 * 60000) / 256) });
    expect(Math.abs(ten.epsilon - 1.2)).toBeLessThan(0.01);
  });

  it("q = 0 or no steps spends nothing", () => {
    expect(computeEpsilon({ samplingRate: 0, noiseMultiplier: 1, steps: 100, delta: 1e-5 }).epsilon).toBe(0);
    expect(computeEpsilon({ samplingRate: 0.1, noiseMultiplier: 1, steps: 0, delta: 1e-5 }).epsilon).toBe(0);
  });

  it("refuses invalid parameters by name", () => {
    const base = { samplingRate: 0.04, noiseMultiplier: 1.5, steps: 10, delta: 1e-5 };
    expectInvalid(() => computeEpsilon({ ...base, samplingRate: 2 }), "samplingRate");
    expectInvalid(() => computeEpsilon({ ...base, noiseMultiplier: 0 }), "noiseMultiplier");
    expectInvalid(() => computeEpsilon({ ...base, steps: 1.5 }), "steps");
    expectInvalid(() => computeEpsilon({ ...base, delta: 0 }), "delta");
    expectInvalid(() => computeEpsilon({ ...base, delta: 1 }), "delta");
    expectInvalid(() => computeEpsilon({ ...base, conversion: "moments" as "classic" }), "conversion");
  });
});

describe("RdpAccountant", () => {
  it("2250 single steps equal one step of 2250, and merge into one ledger entry", () => {
    const single = new RdpAccountant();
    for (let i = 0; i < 2250; i++) single.step(0.04, 1.5);
    const bulk = new RdpAccountant();
    bulk.step(0.04, 1.5, 2250);
    expect(single.ledger()).toEqual([{ q: 0.04, z: 1.5, steps: 2250 }]);
    expect(single.epsilon(1e-5)).toEqual(bulk.epsilon(1e-5));
    expect(single.epsilon(1e-5, "balle")).toEqual(bulk.epsilon(1e-5, "balle"));
    expect(Math.abs(single.epsilon(1e-5).epsilon - 8.07)).toBeLessThan(0.01);
    expect(single.totalSteps()).toBe(2250);
  });

  it("composes different steps by adding RDP", () => {
    const accountant = new RdpAccountant();
    accountant.step(0.04, 1.5, 1000);
    accountant.step(0.02, 1.0, 500);
    accountant.step(0.04, 1.5, 1250);
    expect(accountant.ledger()).toEqual([
      { q: 0.04, z: 1.5, steps: 1000 },
      { q: 0.02, z: 1.0, steps: 500 },
      { q: 0.04, z: 1.5, steps: 1250 },
    ]);
    const onlyFirst = computeEpsilon({ samplingRate: 0.04, noiseMultiplier: 1.5, steps: 2250, delta: 1e-5 });
    expect(accountant.epsilon(1e-5).epsilon).toBeGreaterThan(onlyFirst.epsilon);
    // Reordering the ledger does not change the total.
    const reordered = RdpAccountant.fromLedger([
      { q: 0.02, z: 1.0, steps: 500 },
      { q: 0.04, z: 1.5, steps: 2250 },
    ]);
    expect(reordered.epsilon(1e-5).epsilon).toBeCloseTo(accountant.epsilon(1e-5).epsilon, 10);
  });

  it("ledger round trip through JSON gives the same ε", () => {
    const accountant = new RdpAccountant();
    accountant.step(0.1, 1.1, 7);
    accountant.step(0.05, 0.9, 3);
    const restored = RdpAccountant.fromLedger(JSON.parse(JSON.stringify(accountant.ledger())));
    expect(restored.ledger()).toEqual(accountant.ledger());
    expect(restored.epsilon(1e-6, "balle")).toEqual(accountant.epsilon(1e-6, "balle"));
    // The returned ledger is a copy.
    accountant.ledger()[0].steps = 1000;
    expect(accountant.ledger()[0].steps).toBe(7);
  });

  it("epsilonIfStepped previews the next step without taking it", () => {
    const accountant = new RdpAccountant();
    accountant.step(0.04, 1.5, 100);
    const before = accountant.epsilon(1e-5);
    const preview = accountant.epsilonIfStepped(0.04, 1.5, 1e-5);
    expect(accountant.ledger()).toEqual([{ q: 0.04, z: 1.5, steps: 100 }]);
    expect(accountant.epsilon(1e-5)).toEqual(before);
    accountant.step(0.04, 1.5);
    expect(accountant.epsilon(1e-5)).toEqual(preview);
    expect(preview.epsilon).toBeGreaterThan(before.epsilon);
  });

  it("reports ε = 0 before any step", () => {
    expect(new RdpAccountant().epsilon(1e-5).epsilon).toBe(0);
  });

  it("refuses invalid steps and ledgers by name", () => {
    const accountant = new RdpAccountant();
    expectInvalid(() => accountant.step(1.1, 1), "samplingRate");
    expectInvalid(() => accountant.step(0.1, 0), "noiseMultiplier");
    expectInvalid(() => accountant.step(0.1, 1, 0), "count");
    expectInvalid(() => accountant.epsilon(2), "delta");
    expectInvalid(() => accountant.epsilonIfStepped(0.1, -1, 1e-5), "noiseMultiplier");
    expectInvalid(() => RdpAccountant.fromLedger([{ q: 0.1, z: 1, steps: -2 }]), "steps");
    expectInvalid(() => RdpAccountant.fromLedger([{ q: 0.1, z: Number.NaN, steps: 2 }]), "noiseMultiplier");
    expect(accountant.ledger()).toEqual([]);
  });
});

describe("noiseForTargetEpsilon", () => {
  it("inverts computeEpsilon within the tolerance, never overspending", () => {
    const cases = [
      {
        samplingRate: MNIST_Q,
        noiseMultiplier: 1.12,
        steps: 14063,
        delta: 1e-5,
        conversion: "classic" as const,
      },
      { samplingRate: 0.04, noiseMultiplier: 1.5, steps: 2250, delta: 1e-5, conversion: "balle" as const },
      { samplingRate: 0.1, noiseMultiplier: 0.8, steps: 50, delta: 1e-6, conversion: "classic" as const },
    ];
    for (const { noiseMultiplier, ...setting } of cases) {
      const targetEpsilon = computeEpsilon({ ...setting, noiseMultiplier }).epsilon;
      const sigma = noiseForTargetEpsilon({ ...setting, targetEpsilon });
      expect(sigma).toBeGreaterThanOrEqual(noiseMultiplier - 1e-9);
      expect(sigma).toBeLessThanOrEqual(noiseMultiplier + 0.001);
      expect(computeEpsilon({ ...setting, noiseMultiplier: sigma }).epsilon).toBeLessThanOrEqual(
        targetEpsilon,
      );
    }
  });

  it("honours a custom tolerance", () => {
    const setting = { samplingRate: 0.04, steps: 2250, delta: 1e-5 };
    const target = computeEpsilon({ ...setting, noiseMultiplier: 1.5 }).epsilon;
    const sigma = noiseForTargetEpsilon({ ...setting, targetEpsilon: target, tolerance: 1e-6 });
    expect(Math.abs(sigma - 1.5)).toBeLessThan(2e-6);
  });

  it("explains impossible targets", () => {
    const setting = { samplingRate: 0.04, steps: 2250, delta: 1e-5 };
    // ln(1e5)/62 ≈ 0.186 is the classic floor with orders up to 63.
    expectInvalid(() => noiseForTargetEpsilon({ ...setting, targetEpsilon: 0.1 }), "targetEpsilon");
    expectInvalid(() => noiseForTargetEpsilon({ ...setting, targetEpsilon: 0 }), "targetEpsilon");
    expectInvalid(
      () => noiseForTargetEpsilon({ ...setting, samplingRate: 0, targetEpsilon: 1 }),
      "samplingRate",
    );
    expectInvalid(() => noiseForTargetEpsilon({ ...setting, targetEpsilon: 1, tolerance: 0 }), "tolerance");
  });
});
