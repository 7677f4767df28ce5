import { ErrorCode, FedsimError } from "../errors.js";

/**
 * Byzantine-robust aggregation rules as pure functions over equally long Float32Arrays:
 * coordinate-wise median and trimmed mean (Yin et al. 2018) and Krum / Multi-Krum (Blanchard
 * et al. 2017). They run on million-parameter updates, so per-coordinate work uses one scratch
 * array allocated per call, never per coordinate. None of them use example counts: a count is
 * self-reported, and trusting it would let one attacker outweigh everyone.
 */

/** Below this many values insertion sort beats quickselect's partitioning. */
const INSERTION_SORT_LIMIT = 16;

/** Checks that there is at least one vector and all have one length; returns that length. */
function commonLength(vectors: readonly Float32Array[], what: string): number {
  if (vectors.length === 0) throw new FedsimError(ErrorCode.INVALID_CONFIG, `${what}: no vectors`);
  const n = vectors[0].length;
  for (const v of vectors) {
    if (v.length !== n) throw new FedsimError(ErrorCode.BAD_SHAPE, `${what}: length ${v.length} ≠ ${n}`);
  }
  return n;
}

function insertionSort(a: Float64Array, left: number, right: number): void {
  for (let i = left + 1; i <= right; i++) {
    const x = a[i];
    let j = i - 1;
    while (j >= left && a[j] > x) {
      a[j + 1] = a[j];
      j--;
    }
    a[j + 1] = x;
  }
}

/**
 * Rearranges a[left..right] (inclusive) so that a[k] holds the value of rank k, everything before
 * it is ≤ a[k] and everything after it is ≥ a[k]. Hoare-partition quickselect, median-of-three
 * pivot; no allocation. Exported for tests.
 */
export function selectInPlace(a: Float64Array, left: number, right: number, k: number): void {
  let lo = left;
  let hi = right;
  while (hi > lo) {
    if (hi - lo < INSERTION_SORT_LIMIT) {
      insertionSort(a, lo, hi);
      return;
    }
    const mid = (lo + hi) >>> 1;
    if (a[mid] < a[lo]) swap(a, mid, lo);
    if (a[hi] < a[lo]) swap(a, hi, lo);
    if (a[hi] < a[mid]) swap(a, hi, mid);
    const pivot = a[mid];
    let i = lo;
    let j = hi;
    while (i <= j) {
      while (a[i] < pivot) i++;
      while (a[j] > pivot) j--;
      if (i <= j) {
        swap(a, i, j);
        i++;
        j--;
      }
    }
    // Now a[lo..j] ≤ pivot, a[i..hi] ≥ pivot and anything between equals the pivot.
    if (k <= j) hi = j;
    else if (k >= i) lo = i;
    else return;
  }
}

function swap(a: Float64Array, i: number, j: number): void {
  const t = a[i];
  a[i] = a[j];
  a[j] = t;
}

/** Coordinate-wise median; with an even count, the mean of the two middle values. */
export function coordinateMedian(vectors: readonly Float32Array[], out?: Float32Array): Float32Array {
  const length = commonLength(vectors, "coordinateMedian");
  const n = vectors.length;
  const result = out ?? new Float32Array(length);
  const scratch = new Float64Array(n);
  const k = (n - 1) >> 1;
  for (let c = 0; c < length; c++) {
    for (let j = 0; j < n; j++) scratch[j] = vectors[j][c];
    selectInPlace(scratch, 0, n - 1, k);
    if (n % 2 === 1) {
      result[c] = scratch[k];
    } else {
      // Everything above rank k is ≥ scratch[k]; the smallest of it is rank k + 1.
      let next = scratch[k + 1];
      for (let j = k + 2; j < n; j++) if (scratch[j] < next) next = scratch[j];
      result[c] = (scratch[k] + next) / 2;
    }
  }
  return result;
}

/** How many values a β-trimmed mean drops from each end: ⌊β·n⌋. */
export function trimCount(beta: number, n: number): number {
  if (!(beta >= 0 && beta < 0.5)) {
    throw new FedsimError(ErrorCode.INVALID_CONFIG, `trimBeta must be in [0, 0.5), got ${beta}`);
  }
  return Math.floor(beta * n);
}

/**
 * Coordinate-wise trimmed mean: per coordinate, drop the `trim` largest and `trim` smallest values
 * and average the rest. Requires 2·trim < n.
 */
export function trimmedMean(
  vectors: readonly Float32Array[],
  trim: number,
  out?: Float32Array,
): Float32Array {
  const length = commonLength(vectors, "trimmedMean");
  const n = vectors.length;
  if (!Number.isInteger(trim) || trim < 0 || 2 * trim >= n) {
    throw new FedsimError(
      ErrorCode.INVALID_CONFIG,
      `trimmedMean: trim must be an integer with 0 ≤ 2·trim < n (${n}), got ${trim}`,
    );
  }
  const result = out ?? new Float32Array(length);
  const scratch = new Float64Array(n);
  const top = n - 1 - trim;
  const inv = 1 / (n - 2 * trim);
  for (let c = 0; c < length; c++) {
    for (let j = 0; j < n; j++) scratch[j] = vectors[j][c];
    if (trim > 0) {
      selectInPlace(scratch, 0, n - 1, trim);
      // Ranks trim+1..n−1 now sit above index trim; place rank n−1−trim among them.
      if (top > trim) selectInPlace(scratch, trim + 1, n - 1, top);
    }
    let sum = 0;
    for (let j = trim; j <= top; j++) sum += scratch[j];
    result[c] = sum * inv;
  }
  return result;
}

/**
 * All pairwise squared Euclidean distances as an n×n row-major matrix (zero diagonal). Each pair
 * is visited once; coordinates are walked in blocks so the n vectors' current slices stay in
 * cache while every pair reads them. Differences are squared directly (not ‖a‖²+‖b‖²−2a·b), which
 * costs the same and does not cancel when updates are close.
 */
export function pairwiseSquaredDistances(vectors: readonly Float32Array[]): Float64Array {
  const length = commonLength(vectors, "pairwiseSquaredDistances");
  const n = vectors.length;
  const distances = new Float64Array(n * n);
  const block = 2048;
  for (let start = 0; start < length; start += block) {
    const end = Math.min(length, start + block);
    for (let i = 0; i < n; i++) {
      const a = vectors[i];
      for (let j = i + 1; j < n; j++) {
        const b = vectors[j];
        let sum = 0;
        for (let c = start; c < end; c++) {
          const d = a[c] - b[c];
          sum += d * d;
        }
        distances[i * n + j] += sum;
      }
    }
  }
  for (let i = 0; i < n; i++) for (let j = 0; j < i; j++) distances[i * n + j] = distances[j * n + i];
  return distances;
}

/** Krum needs more than 2f + 2 updates for each to have n − f − 2 ≥ f + 1 neighbours. */
export function krumFeasible(n: number, f: number): boolean {
  return n > 2 * f + 2;
}

/**
 * Krum scores from a distance matrix: score_i = Σ of the squared distances from i to its n − f − 2
 * nearest other updates (Blanchard et al. 2017). Lower is more central.
 */
export function krumScores(distances: Float64Array, n: number, f: number): Float64Array {
  if (distances.length !== n * n) {
    throw new FedsimError(ErrorCode.BAD_SHAPE, `krumScores: ${distances.length} distances for n=${n}`);
  }
  if (!Number.isInteger(f) || f < 0) {
    throw new FedsimError(ErrorCode.INVALID_CONFIG, `byzantineClients must be an integer ≥ 0, got ${f}`);
  }
  if (!krumFeasible(n, f)) {
    throw new FedsimError(ErrorCode.INVALID_CONFIG, `Krum needs n > 2f + 2; got n=${n}, f=${f}`);
  }
  const neighbours = n - f - 2;
  const scores = new Float64Array(n);
  const others = new Float64Array(n - 1);
  for (let i = 0; i < n; i++) {
    let at = 0;
    for (let j = 0; j < n; j++) if (j !== i) others[at++] = distances[i * n + j];
    selectInPlace(others, 0, n - 2, neighbours - 1);
    let score = 0;
    for (let j = 0; j < neighbours; j++) score += others[j];
    scores[i] = score;
  }
  return scores;
}

/**
 * Multi-Krum's selection: indices of the m updates with the lowest Krum scores, best first (ties
 * go to the lower index, so the choice is deterministic). m = 1 is Krum.
 */
export function krumSelect(
  vectors: readonly Float32Array[],
  f: number,
  m: number,
): { selected: number[]; scores: Float64Array } {
  const n = vectors.length;
  if (!Number.isInteger(m) || m < 1 || m > n) {
    throw new FedsimError(ErrorCode.INVALID_CONFIG, `multiKrumM must be an integer in [1, ${n}], got ${m}`);
  }
  const scores = krumScores(pairwiseSquaredDistances(vectors), n, f);
  const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => scores[a] - scores[b] || a - b);
  return { selected: order.slice(0, m), scores };
}
