/**
 * Rényi DP of the sampled Gaussian mechanism (SGM), computed as Opacus and TF Privacy do
 * (`_compute_rdp` / `_compute_log_a`, Mironov, Talwar & Zhang 2019, Section 3.3), plus the two
 * RDP → (ε, δ) conversions. The reference numbers in the tests (8.07 / 7.329 / 2.92 / 1.20) are
 * reproduced with DEFAULT_ORDERS, Opacus' list; TF Privacy's older list gives the same to 0.01.
 */
import { logAdd, logErfc, logSub } from "./logmath.js";
import {
  type Conversion,
  invalid,
  requireConversion,
  requireDelta,
  requireNonNegative,
  requireOrders,
  requireSamplingRate,
  requireStepCount,
} from "./validate.js";

export interface EpsilonResult {
  epsilon: number;
  /** The RDP order α at which the conversion was tightest (NaN if every order gave NaN). */
  order: number;
}

/** Opacus' RDPAccountant.DEFAULT_ALPHAS: 1.1, 1.2, …, 10.9, then 12, 13, …, 63. */
export const DEFAULT_ORDERS: readonly number[] = Object.freeze([
  ...Array.from({ length: 99 }, (_, i) => 1 + (i + 1) / 10),
  ...Array.from({ length: 52 }, (_, i) => 12 + i),
]);

/** Stop summing the fractional-order series once both new terms are below e^−30, as Opacus does. */
const LOG_TERM_CUTOFF = -30;

/** log(A_α) for integer α: a finite binomial sum. */
function logAForIntegerOrder(q: number, sigma: number, alpha: number): number {
  const logQ = Math.log(q);
  const log1mQ = Math.log1p(-q);
  const twoSigma2 = 2 * sigma * sigma;
  let logA = Number.NEGATIVE_INFINITY;
  let logBinom = 0; // log C(α, 0)
  for (let i = 0; i <= alpha; i++) {
    if (i > 0) logBinom += Math.log((alpha - i + 1) / i);
    const logCoef = logBinom + i * logQ + (alpha - i) * log1mQ;
    logA = logAdd(logA, logCoef + (i * i - i) / twoSigma2);
  }
  return logA;
}

/**
 * log(A_α) for fractional α: the integral split at z0 into two series whose binomial coefficients
 * C(α, i) change sign once i > α, so they are accumulated with logAdd / logSub by sign.
 */
function logAForFractionalOrder(q: number, sigma: number, alpha: number): number {
  const logQ = Math.log(q);
  const log1mQ = Math.log1p(-q);
  const twoSigma2 = 2 * sigma * sigma;
  const sqrt2Sigma = Math.SQRT2 * sigma;
  const z0 = sigma * sigma * Math.log(1 / q - 1) + 0.5;
  let logA0 = Number.NEGATIVE_INFINITY;
  let logA1 = Number.NEGATIVE_INFINITY;
  // Generalised binomial C(α, i) tracked as sign and log-magnitude so it never overflows.
  let coefSign = 1;
  let logAbsCoef = 0;
  for (let i = 0; ; i++) {
    if (i > 0) {
      const factor = (alpha - i + 1) / i;
      if (factor < 0) coefSign = -coefSign;
      logAbsCoef += Math.log(Math.abs(factor));
    }
    const j = alpha - i;
    const logT0 = logAbsCoef + i * logQ + j * log1mQ;
    const logT1 = logAbsCoef + j * logQ + i * log1mQ;
    const logE0 = Math.log(0.5) + logErfc((i - z0) / sqrt2Sigma);
    const logE1 = Math.log(0.5) + logErfc((z0 - j) / sqrt2Sigma);
    const logS0 = logT0 + (i * i - i) / twoSigma2 + logE0;
    const logS1 = logT1 + (j * j - j) / twoSigma2 + logE1;
    if (coefSign > 0) {
      logA0 = logAdd(logA0, logS0);
      logA1 = logAdd(logA1, logS1);
    } else {
      logA0 = logSub(logA0, logS0);
      logA1 = logSub(logA1, logS1);
    }
    // `!(… >= …)` also stops on NaN, which would otherwise loop forever.
    if (!(Math.max(logS0, logS1) >= LOG_TERM_CUTOFF)) break;
  }
  return logAdd(logA0, logA1);
}

/** RDP of one SGM step at order α (sensitivity 1, noise std σ); may be Infinity. */
export function rdpOfSampledGaussian(q: number, sigma: number, alpha: number): number {
  if (q === 0) return 0;
  if (sigma === 0) return Number.POSITIVE_INFINITY;
  // σ² overflows (σ > ~1e154) and the series below would meet NaN: use the Gaussian's own RDP
  // α/(2σ²), an upper bound, kept > 0 so that ε still carries its δ floor.
  if (!Number.isFinite(sigma * sigma)) return Math.max(Number.MIN_VALUE, alpha / (2 * sigma) / sigma);
  if (q === 1) return alpha / (2 * sigma * sigma);
  if (alpha === Number.POSITIVE_INFINITY) return Number.POSITIVE_INFINITY;
  const logA = Number.isInteger(alpha)
    ? logAForIntegerOrder(q, sigma, alpha)
    : logAForFractionalOrder(q, sigma, alpha);
  return logA / (alpha - 1);
}

/**
 * RDP of `steps` compositions of the SGM at each order. noiseMultiplier = 0 is accepted and gives
 * Infinity (no privacy) whenever q > 0, like Opacus; the ε functions refuse it.
 */
export function computeRdp(
  q: number,
  noiseMultiplier: number,
  steps: number,
  orders: readonly number[] = DEFAULT_ORDERS,
): number[] {
  requireSamplingRate("samplingRate", q);
  requireNonNegative("noiseMultiplier", noiseMultiplier);
  requireStepCount("steps", steps);
  requireOrders("orders", orders);
  // 0 steps release nothing; checked first because 0 · Infinity would be NaN.
  if (steps === 0) return orders.map(() => 0);
  return orders.map((alpha) => rdpOfSampledGaussian(q, noiseMultiplier, alpha) * steps);
}

function checkConversionInputs(orders: readonly number[], rdp: readonly number[], delta: number): void {
  requireOrders("orders", orders);
  requireDelta("delta", delta);
  if (!Array.isArray(rdp) || rdp.length !== orders.length) {
    throw invalid("rdp", `one value per order (${orders.length})`, Array.isArray(rdp) ? rdp.length : rdp);
  }
}

/** Smallest non-NaN candidate, like numpy's nanargmin; all NaN means no privacy at all. */
function tightest(orders: readonly number[], candidates: readonly number[]): EpsilonResult {
  let best = -1;
  for (let k = 0; k < candidates.length; k++) {
    if (Number.isNaN(candidates[k])) continue;
    if (best < 0 || candidates[k] < candidates[best]) best = k;
  }
  if (best < 0) return { epsilon: Number.POSITIVE_INFINITY, order: Number.NaN };
  return { epsilon: candidates[best], order: orders[best] };
}

/**
 * A mechanism with zero RDP at every order (q = 0 or no steps) releases nothing: ε = 0. Without
 * this the conversions would report their δ-dependent floor (e.g. ln(1/δ)/62) instead.
 */
function releasesNothing(orders: readonly number[], rdp: readonly number[]): EpsilonResult | null {
  if (!rdp.every((value) => value === 0)) return null;
  return { epsilon: 0, order: Math.max(...orders) };
}

/** Classic conversion (Mironov 2017, Prop. 3): ε = min_α [RDP(α) + ln(1/δ)/(α − 1)]. */
export function epsilonClassic(
  orders: readonly number[],
  rdp: readonly number[],
  delta: number,
): EpsilonResult {
  checkConversionInputs(orders, rdp, delta);
  return releasesNothing(orders, rdp) ?? classicCandidates(orders, rdp, delta);
}

function classicCandidates(orders: readonly number[], rdp: readonly number[], delta: number): EpsilonResult {
  const logInvDelta = -Math.log(delta);
  return tightest(
    orders,
    orders.map((alpha, k) => rdp[k] + logInvDelta / (alpha - 1)),
  );
}

/**
 * Balle et al. 2020 (Theorem 21), as Opacus' get_privacy_spent computes it:
 * ε = RDP(α) − (ln δ + ln α)/(α − 1) + ln((α − 1)/α), minimised over α, NaNs ignored. Unlike Opacus
 * we clamp at 0 (as Google's dp_accounting does): a negative ε is not a meaningful guarantee.
 */
export function epsilonBalle(
  orders: readonly number[],
  rdp: readonly number[],
  delta: number,
): EpsilonResult {
  checkConversionInputs(orders, rdp, delta);
  return releasesNothing(orders, rdp) ?? balleCandidates(orders, rdp, delta);
}

function balleCandidates(orders: readonly number[], rdp: readonly number[], delta: number): EpsilonResult {
  const logDelta = Math.log(delta);
  const result = tightest(
    orders,
    orders.map(
      (alpha, k) => rdp[k] - (logDelta + Math.log(alpha)) / (alpha - 1) + Math.log((alpha - 1) / alpha),
    ),
  );
  return { epsilon: Math.max(0, result.epsilon), order: result.order };
}

export type { Conversion };

/** Converts with the named rule. */
export function rdpToEpsilon(
  orders: readonly number[],
  rdp: readonly number[],
  delta: number,
  conversion: Conversion,
): EpsilonResult {
  requireConversion("conversion", conversion);
  return conversion === "balle" ? epsilonBalle(orders, rdp, delta) : epsilonClassic(orders, rdp, delta);
}

/**
 * The ε that the conversion reports for zero RDP: no σ, however large, gets below it with these
 * orders and δ (as long as q > 0 and steps > 0), so targets under it are impossible.
 */
export function epsilonFloor(orders: readonly number[], delta: number, conversion: Conversion): number {
  requireConversion("conversion", conversion);
  requireOrders("orders", orders);
  requireDelta("delta", delta);
  const zeros = orders.map(() => 0);
  const result =
    conversion === "balle" ? balleCandidates(orders, zeros, delta) : classicCandidates(orders, zeros, delta);
  return result.epsilon;
}
