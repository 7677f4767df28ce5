/**
 * Privacy ledger for DP-FedAvg: one sampled-Gaussian step per round, composed in RDP and converted
 * to (ε, δ) on demand. The ledger, not a running ε, is what checkpoints store, so a resumed run
 * reports exactly what an uninterrupted one would.
 */
import { ErrorCode, FedsimError } from "../errors.js";
import {
  type Conversion,
  computeRdp,
  DEFAULT_ORDERS,
  type EpsilonResult,
  epsilonFloor,
  rdpToEpsilon,
} from "./rdp.js";
import {
  requireConversion,
  requireDelta,
  requireOrders,
  requirePositive,
  requirePositiveInteger,
  requireSamplingRate,
  requireStepCount,
} from "./validate.js";

/** `steps` consecutive rounds at sampling rate q and noise multiplier z. */
export interface LedgerEntry {
  q: number;
  z: number;
  steps: number;
}

function checkStep(q: number, z: number): void {
  requireSamplingRate("samplingRate", q);
  requirePositive("noiseMultiplier", z);
}

export class RdpAccountant {
  private readonly entries: LedgerEntry[] = [];
  private readonly orders: readonly number[];
  /** RDP of one step per (q, z), so a long run does not recompute the same series every round. */
  private readonly perStepRdp = new Map<string, number[]>();

  constructor(orders: readonly number[] = DEFAULT_ORDERS) {
    requireOrders("orders", orders);
    this.orders = [...orders];
  }

  /** Records `count` steps; consecutive identical (q, z) merge into one ledger entry. */
  step(samplingRate: number, noiseMultiplier: number, count = 1): void {
    checkStep(samplingRate, noiseMultiplier);
    requirePositiveInteger("count", count);
    const last = this.entries[this.entries.length - 1];
    if (last !== undefined && last.q === samplingRate && last.z === noiseMultiplier) {
      last.steps += count;
    } else {
      this.entries.push({ q: samplingRate, z: noiseMultiplier, steps: count });
    }
  }

  /** (ε, δ) spent so far; ε = 0 before any step. */
  epsilon(delta: number, conversion: Conversion = "classic"): EpsilonResult {
    requireDelta("delta", delta);
    requireConversion("conversion", conversion);
    return rdpToEpsilon(this.orders, this.totalRdp(this.entries), delta, conversion);
  }

  /** The ε this accountant would report after one more step at (q, z), without taking it. */
  epsilonIfStepped(
    samplingRate: number,
    noiseMultiplier: number,
    delta: number,
    conversion: Conversion = "classic",
  ): EpsilonResult {
    checkStep(samplingRate, noiseMultiplier);
    requireDelta("delta", delta);
    requireConversion("conversion", conversion);
    const extra: LedgerEntry = { q: samplingRate, z: noiseMultiplier, steps: 1 };
    return rdpToEpsilon(this.orders, this.totalRdp([...this.entries, extra]), delta, conversion);
  }

  /** A copy of the ledger, for checkpoints and reports. */
  ledger(): LedgerEntry[] {
    return this.entries.map((entry) => ({ ...entry }));
  }

  totalSteps(): number {
    return this.entries.reduce((sum, entry) => sum + entry.steps, 0);
  }

  static fromLedger(
    ledger: readonly LedgerEntry[],
    orders: readonly number[] = DEFAULT_ORDERS,
  ): RdpAccountant {
    if (!Array.isArray(ledger)) {
      throw new FedsimError(ErrorCode.INVALID_CONFIG, "ledger must be an array of { q, z, steps }");
    }
    const accountant = new RdpAccountant(orders);
    for (const entry of ledger) {
      requireStepCount("ledger steps", entry?.steps);
      if (entry.steps > 0) accountant.step(entry.q, entry.z, entry.steps);
    }
    return accountant;
  }

  private totalRdp(entries: readonly LedgerEntry[]): number[] {
    const total = this.orders.map(() => 0);
    for (const { q, z, steps } of entries) {
      const perStep = this.rdpPerStep(q, z);
      for (let k = 0; k < total.length; k++) total[k] += perStep[k] * steps;
    }
    return total;
  }

  private rdpPerStep(q: number, z: number): number[] {
    const key = `${q}/${z}`;
    let rdp = this.perStepRdp.get(key);
    if (rdp === undefined) {
      rdp = computeRdp(q, z, 1, this.orders);
      this.perStepRdp.set(key, rdp);
    }
    return rdp;
  }
}

export interface EpsilonQuery {
  samplingRate: number;
  noiseMultiplier: number;
  steps: number;
  delta: number;
  conversion?: Conversion;
  orders?: readonly number[];
}

/** ε after `steps` identical SGM steps. */
export function computeEpsilon(query: EpsilonQuery): EpsilonResult {
  const conversion = query.conversion ?? "classic";
  const orders = query.orders ?? DEFAULT_ORDERS;
  requirePositive("noiseMultiplier", query.noiseMultiplier);
  requireDelta("delta", query.delta);
  requireConversion("conversion", conversion);
  const rdp = computeRdp(query.samplingRate, query.noiseMultiplier, query.steps, orders);
  return rdpToEpsilon(orders, rdp, query.delta, conversion);
}

export interface NoiseQuery {
  targetEpsilon: number;
  samplingRate: number;
  steps: number;
  delta: number;
  conversion?: Conversion;
  /** Absolute tolerance on the returned noise multiplier (default 0.001). */
  tolerance?: number;
  orders?: readonly number[];
}

/** Past this the answer is useless anyway; stops the bracket search from running forever. */
const MAX_NOISE_MULTIPLIER = 1e6;

/**
 * Smallest noise multiplier σ (to within `tolerance`, rounded up) whose ε after `steps` steps is at
 * most `targetEpsilon`. ε falls monotonically as σ grows, so bracket by doubling, then bisect; the
 * upper end always satisfies the target, so the answer never overspends.
 */
export function noiseForTargetEpsilon(query: NoiseQuery): number {
  const conversion = query.conversion ?? "classic";
  const tolerance = query.tolerance ?? 0.001;
  const orders = query.orders ?? DEFAULT_ORDERS;
  const { targetEpsilon, samplingRate, steps, delta } = query;
  requirePositive("targetEpsilon", targetEpsilon);
  requireSamplingRate("samplingRate", samplingRate);
  requireStepCount("steps", steps);
  requireDelta("delta", delta);
  requireConversion("conversion", conversion);
  requirePositive("tolerance", tolerance);
  requireOrders("orders", orders);
  if (samplingRate === 0 || steps === 0) {
    throw new FedsimError(
      ErrorCode.INVALID_CONFIG,
      "samplingRate and steps must be > 0: with either at 0 nothing is released and any noise multiplier gives ε = 0",
    );
  }
  const floor = epsilonFloor(orders, delta, conversion);
  if (targetEpsilon <= floor) {
    throw new FedsimError(
      ErrorCode.INVALID_CONFIG,
      `targetEpsilon ${targetEpsilon} is unreachable: with delta ${delta} and the ${conversion} conversion ` +
        `over these RDP orders, ε stays above ${floor.toFixed(4)} for any noise multiplier`,
    );
  }
  const epsilonAt = (sigma: number): number =>
    computeEpsilon({ samplingRate, noiseMultiplier: sigma, steps, delta, conversion, orders }).epsilon;
  const meets = (sigma: number): boolean => epsilonAt(sigma) <= targetEpsilon;

  let high = 1;
  while (!meets(high)) {
    high *= 2;
    if (high > MAX_NOISE_MULTIPLIER) {
      throw new FedsimError(
        ErrorCode.INVALID_CONFIG,
        `targetEpsilon ${targetEpsilon} needs a noise multiplier above ${MAX_NOISE_MULTIPLIER}: raise it or lower samplingRate/steps`,
      );
    }
  }
  let low = high / 2;
  while (low > tolerance && meets(low)) {
    high = low;
    low /= 2;
  }
  if (meets(low)) return low;
  while (high - low > tolerance) {
    const mid = (low + high) / 2;
    // Below one ulp the midpoint is low or high itself: a tolerance that fine can never be met.
    if (mid <= low || mid >= high) break;
    if (meets(mid)) high = mid;
    else low = mid;
  }
  return high;
}
