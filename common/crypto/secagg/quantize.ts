import { ErrorCode, FedsimError } from "../../errors.js";
import { sharedRingWindow } from "./ring-window.js";

/**
 * Signed fixed-point encoding into Z/2^32, the ring in which SecAgg masks cancel.
 *
 * A float v is clamped to [−clipRange, clipRange] and encoded as q = round(v·scale), stored as its
 * two's complement in a Uint32Array. Sums are then plain additions mod 2^32; as long as the true
 * integer sum stays inside int32, reading the result back as int32 and dividing by `scale` gives
 * the sum of the quantised values exactly.
 *
 * Precision: each client's coordinate is off by at most 1/(2·scale) (rounding), so a sum of n
 * clients is off by at most n/(2·scale). With `chooseScale(clipRange, n)` the scale is about
 * 2^30 / (n·clipRange) (within a factor 2), i.e. the encoding spends 31 − log2(n·clipRange) bits on
 * resolution: clipRange 1 and 100 clients give scale 2^24, a step of 6e-8 per client, about
 * float32's own epsilon at 1.0. A clipRange of 10 with 1000 clients gives scale 2^17 (step 7.6e-6).
 */

const TWO_POW_31 = 2 ** 31;

export interface QuantizeOptions {
  /** Values are clamped to [−clipRange, clipRange] before encoding. */
  clipRange: number;
  /** Fixed-point multiplier; use chooseScale() so that sums cannot wrap. */
  scale: number;
}

/**
 * Encodes floats as two's complement fixed-point integers mod 2^32.
 * Throws NON_FINITE on NaN or ±Infinity: a diverged update should be refused, not clipped.
 */
export function quantize(values: Float32Array, options: QuantizeOptions): Uint32Array {
  const { clipRange, scale } = options;
  requirePositiveFinite(clipRange, "clipRange");
  requirePositiveFinite(scale, "scale");
  if (clipRange * scale >= TWO_POW_31) {
    throw new FedsimError(
      ErrorCode.INVALID_CONFIG,
      `clipRange·scale must be < 2^31 (got ${clipRange}·${scale}); use chooseScale()`,
    );
  }
  // Clamping the integer (not only the float) keeps |q| ≤ clipRange·scale even when rounding
  // would go up, which is what chooseScale's no-wrap guarantee relies on.
  const maxQ = Math.floor(clipRange * scale);
  // An Int32Array store of an integer within int32 keeps the same 32 bits as its two's
  // complement in a Uint32Array, and is the store V8 compiles to a plain move.
  const out = new Int32Array(values.length);
  let nonFinite = 0;
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    // v − v is 0 for finite v and NaN otherwise: a branch-free check, located after the loop.
    nonFinite += v - v;
    const x = v * scale;
    // Math.round(x) (halves toward +∞) without Math.round, which V8 runs several times slower:
    // floor(x + 0.5) is the same integer except where x + 0.5 rounds up to it, i.e. x < q − 0.5
    // (exact for |q| < 2^52; larger q are clamped below anyway).
    let q = Math.floor(x + 0.5);
    if (q - 0.5 > x) q -= 1;
    if (q > maxQ) q = maxQ;
    else if (q < -maxQ) q = -maxQ;
    out[i] = q;
  }
  if (nonFinite !== 0) {
    const i = values.findIndex((v) => !Number.isFinite(v));
    throw new FedsimError(ErrorCode.NON_FINITE, `quantize: value at index ${i} is ${values[i]}`);
  }
  return new Uint32Array(out.buffer);
}

/** Reads a mod-2^32 sum back as signed int32 and divides by scale. */
export function dequantizeSum(sum: Uint32Array, scale: number): Float32Array {
  requirePositiveFinite(scale, "scale");
  const out = new Float32Array(sum.length);
  for (let i = 0; i < sum.length; i++) out[i] = (sum[i] | 0) / scale;
  return out;
}

/**
 * The largest power of two `scale` with maxClients·clipRange·scale < 2^31, so the sum of up to
 * maxClients quantised vectors never leaves int32 and never wraps. May be below 1 for huge ranges.
 */
export function chooseScale(clipRange: number, maxClients: number): number {
  requirePositiveFinite(clipRange, "clipRange");
  if (!Number.isInteger(maxClients) || maxClients < 1) {
    throw new FedsimError(
      ErrorCode.INVALID_CONFIG,
      `maxClients must be a positive integer (got ${maxClients})`,
    );
  }
  const bound = maxClients * clipRange;
  let scale = 2 ** Math.floor(Math.log2(TWO_POW_31 / bound));
  if (!Number.isFinite(scale) || scale === 0) {
    throw new FedsimError(ErrorCode.INVALID_CONFIG, `clipRange ${clipRange} is out of the usable range`);
  }
  // log2 in floating point can be off by one near exact powers of two: settle it exactly.
  while (bound * scale >= TWO_POW_31) scale /= 2;
  while (bound * scale * 2 < TWO_POW_31) scale *= 2;
  return scale;
}

/** into[i] = (into[i] + x[i]) mod 2^32. */
export function addMod(into: Uint32Array, x: Uint32Array): void {
  combineMod(into, x, 1);
}

/** into[i] = (into[i] − x[i]) mod 2^32. */
export function subMod(into: Uint32Array, x: Uint32Array): void {
  combineMod(into, x, -1);
}

const WINDOW_WORDS = 16_384;

/** Slice by slice through a SIMD ring window (ring-window.ts): three memcpys beat one JS loop. */
function combineMod(into: Uint32Array, x: Uint32Array, sign: 1 | -1): void {
  requireSameLength(into, x);
  const window = sharedRingWindow(WINDOW_WORDS);
  try {
    for (let start = 0; start < into.length; start += WINDOW_WORDS) {
      const end = Math.min(into.length, start + WINDOW_WORDS);
      window.acc.set(into.subarray(start, end));
      window.operand.set(x.subarray(start, end));
      if (sign === 1) window.add(end - start);
      else window.sub(end - start);
      into.set(window.acc.subarray(0, end - start), start);
    }
  } finally {
    window.clear();
  }
}

function requireSameLength(a: Uint32Array, b: Uint32Array): void {
  if (a.length !== b.length) {
    throw new FedsimError(ErrorCode.BAD_SHAPE, `vector lengths differ: ${a.length} vs ${b.length}`);
  }
}

function requirePositiveFinite(value: number, name: string): void {
  if (!Number.isFinite(value) || value <= 0) {
    throw new FedsimError(
      ErrorCode.INVALID_CONFIG,
      `${name} must be a positive finite number (got ${value})`,
    );
  }
}
