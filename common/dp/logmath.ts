/**
 * Log-space arithmetic and the complementary error function for the RDP accountant. The sampled
 * Gaussian's moments span hundreds of orders of magnitude, so everything is summed as logarithms.
 * No npm dependency ships an accurate erfc, hence our own: a power series where it converges
 * without cancellation and a continued fraction in the tail, which also yields log(erfc) for
 * arguments where erfc itself underflows.
 */

const SQRT_PI = Math.sqrt(Math.PI);
const LN2 = Math.LN2;
/** Below this the series is used, above it the continued fraction; both are at full precision there. */
const SERIES_LIMIT = 2;

/** log(e^x + e^y) without overflow; -Infinity stands for 0. */
export function logAdd(logX: number, logY: number): number {
  const small = Math.min(logX, logY);
  const large = Math.max(logX, logY);
  if (small === Number.NEGATIVE_INFINITY) return large;
  return Math.log1p(Math.exp(small - large)) + large;
}

/** log(e^x − e^y) for x ≥ y; throws on a negative result, which would mean a bug upstream. */
export function logSub(logX: number, logY: number): number {
  if (logX < logY) throw new RangeError("logSub: the result of the subtraction would be negative");
  if (logY === Number.NEGATIVE_INFINITY) return logX;
  if (logX === logY) return Number.NEGATIVE_INFINITY;
  const diff = logX - logY;
  // expm1 overflows past ~709; then e^y is negligible next to e^x.
  if (diff > 700) return logX;
  return Math.log(Math.expm1(diff)) + logY;
}

/**
 * erf(x) for 0 ≤ x < ~3 from the all-positive series
 * erf(x) = 2/√π · e^(−x²) · Σ 2ⁿ x^(2n+1) / (1·3·5···(2n+1)); no alternating signs, so no cancellation.
 */
function erfSeries(x: number): number {
  const x2 = x * x;
  let term = x;
  let sum = x;
  for (let n = 1; n < 500; n++) {
    term *= (2 * x2) / (2 * n + 1);
    sum += term;
    if (term < sum * 1e-17) break;
  }
  return (2 / SQRT_PI) * Math.exp(-x2) * sum;
}

/**
 * Scaled complement erfcx(x) = e^(x²)·erfc(x) for x ≥ SERIES_LIMIT, from the continued fraction
 * erfc(x) = e^(−x²)/√π · 1/(x + (1/2)/(x + 1/(x + (3/2)/(x + …)))), evaluated by modified Lentz.
 */
function erfcxContinuedFraction(x: number): number {
  const tiny = 1e-300;
  let f = x;
  let c = x;
  let d = 0;
  for (let n = 1; n < 10_000; n++) {
    const a = n / 2;
    d = x + a * d;
    if (d === 0) d = tiny;
    c = x + a / c;
    if (c === 0) c = tiny;
    d = 1 / d;
    const delta = c * d;
    f *= delta;
    if (Math.abs(delta - 1) < 1e-16) break;
  }
  return 1 / (SQRT_PI * f);
}

/** Complementary error function, accurate to ~1e-15 relative over the whole real line. */
export function erfc(x: number): number {
  if (Number.isNaN(x)) return Number.NaN;
  if (x === Number.POSITIVE_INFINITY) return 0;
  if (x === Number.NEGATIVE_INFINITY) return 2;
  if (x < 0) return 2 - erfc(-x);
  if (x < SERIES_LIMIT) return 1 - erfSeries(x);
  return Math.exp(-x * x) * erfcxContinuedFraction(x);
}

/** log(erfc(x)), finite even where erfc(x) underflows (x ≳ 27). */
export function logErfc(x: number): number {
  if (Number.isNaN(x)) return Number.NaN;
  if (x === Number.POSITIVE_INFINITY) return Number.NEGATIVE_INFINITY;
  if (x === Number.NEGATIVE_INFINITY) return LN2;
  if (x < SERIES_LIMIT) return Math.log(erfc(x));
  return -x * x + Math.log(erfcxContinuedFraction(x));
}
