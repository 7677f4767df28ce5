/**
 * Stateless seeded randomness for the virtual clock: a uniform number from (seed, purpose, keys)
 * with no stream to advance. Every answer depends only on its keys, so queries may come in any
 * order (parallel fits finishing in any wall-clock order) and still give the same run, and
 * 100,000 clients need no per-client state.
 */

/** murmur3's 32-bit finaliser: full avalanche, so neighbouring keys give unrelated outputs. */
function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

function combine(h: number, word: number): number {
  return fmix32((h ^ Math.imul(word >>> 0, 0x9e3779b1)) + 0x7f4a7c15);
}

const f64 = new Float64Array(1);
const u32 = new Uint32Array(f64.buffer);

/**
 * Uniform in (0, 1) from a seed, a purpose tag and up to three keys. Non-integer keys (simulated
 * times) are hashed by their exact bits, so 0.1 + 0.2 and 0.3 are different keys. Fixed arity, no
 * allocation: availability asks this for every client of a round.
 */
export function unitHash(seed: number, purpose: number, a: number, b = 0, c = 0): number {
  let h = combine(seed >>> 0, purpose);
  let g = combine(h, 0x5bd1e995);
  h = mixKey(h, a, 0);
  g = mixKey(g, a, 1);
  h = mixKey(h, b, 0);
  g = mixKey(g, b, 1);
  h = mixKey(h, c, 0);
  g = mixKey(g, c, 1);
  // 53 bits from two independent 32-bit lanes, offset by half a step so the result is never 0.
  return ((h >>> 5) * 67108864 + (g >>> 6) + 0.5) / 9007199254740992;
}

function mixKey(h: number, key: number, lane: number): number {
  if (Number.isInteger(key) && Math.abs(key) < 2 ** 31) return combine(h, lane === 0 ? key : ~key);
  f64[0] = key;
  return lane === 0 ? combine(combine(h, u32[0]), u32[1]) : combine(combine(h, ~u32[0]), ~u32[1]);
}

/** Standard normal by inverse transform of two uniforms (Box–Muller, cosine branch). */
export function normalFrom(u1: number, u2: number): number {
  return Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * u2);
}

/** Purpose tags, so that draws for different things about one client are independent. */
export const Purpose = {
  TIER: 1,
  SPEED: 2,
  DOWNLINK: 3,
  UPLINK: 4,
  LATENCY: 5,
  SECONDS_PER_EXAMPLE: 6,
  DROPOUT: 7,
  TIMEZONE: 8,
  DIURNAL: 9,
  CHARGING_START: 10,
  CHARGING_LENGTH: 11,
  OUTAGE: 12,
  DROPOUT_HAZARD: 13,
  REQUIRES_CHARGING: 14,
  EXCHANGE_DROPOUT: 15,
} as const;
