import { weightedMean } from "../../common/strategy/aggregate.js";
import { sig, timeOnce } from "../timing.js";

/**
 * FedAvg's server-side cost: weightedMean over 100 client updates the size of the FedAvg CNN
 * (1,663,370 floats, 665 MB in all), against the least work any aggregation must do: read every
 * byte once and add it up. The reference is a plain typed-array read-and-add pass done in
 * cache-sized blocks, so each update byte is read from memory once and the running sum stays in
 * cache; it is memory-bound, i.e. about what one thread on this machine can do at all.
 *
 * The naive whole-vector pass (out[i] += v[i] over each update in turn) is timed too, for context:
 * it streams the 6.65 MB accumulator through memory once per update, three memory accesses per
 * element instead of one, so a careful aggregator beats it.
 */
export interface AggregationSection {
  updates: number;
  floatsPerUpdate: number;
  totalMB: number;
  /** Best-of-repeats seconds of weightedMean (memory-bound work: the fastest run is the least disturbed). */
  seconds: number;
  /** Best-of-repeats seconds of the blocked read-and-add pass over the same bytes. */
  referenceSeconds: number;
  /** referenceSeconds ÷ seconds: our speed relative to the reference; 1 = as fast, goal ≥ 0.5. */
  speedRatio: number;
  /** Same number as speedRatio (reference time ÷ our time; higher is better for us). */
  ratio: number;
  throughputGBps: number;
  referenceThroughputGBps: number;
  /** The naive, unblocked out[i] += v[i] pass, for context (not the reference). */
  naiveSeconds: number;
  naiveSpeedRatio: number;
  repeats: number;
}

export const CNN_PARAMS = 1_663_370;
/** 4,096 float32s = 16 KB: the running sums stay in L1 while each update's slice streams past. */
const BLOCK = 4096;

/** The reference: every update read once, summed into a cache-resident block, then stored. */
function blockedReadAndAdd(vectors: readonly Float32Array[], out: Float32Array): void {
  const acc = new Float32Array(BLOCK);
  for (let start = 0; start < out.length; start += BLOCK) {
    const len = Math.min(BLOCK, out.length - start);
    acc.fill(0);
    for (const v of vectors) {
      for (let i = 0; i < len; i++) acc[i] += v[start + i];
    }
    out.set(acc.subarray(0, len), start);
  }
}

/** The naive pass: the whole accumulator goes through memory once per update. */
function naiveReadAndAdd(vectors: readonly Float32Array[], out: Float32Array): void {
  out.fill(0);
  for (const v of vectors) {
    for (let i = 0; i < out.length; i++) out[i] += v[i];
  }
}

function makeUpdates(count: number, length: number): Float32Array[] {
  // Values do not change the cost of the arithmetic; distinct arrays keep every byte a real read.
  const base = new Float32Array(length);
  let state = 0x9e3779b9;
  for (let i = 0; i < length; i++) {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    base[i] = (state / 2 ** 32 - 0.5) * 1e-2;
  }
  return Array.from({ length: count }, () => new Float32Array(base));
}

export async function runAggregation(options: {
  quick: boolean;
  log: (line: string) => void;
}): Promise<AggregationSection> {
  const updates = 100;
  const repeats = options.quick ? 1 : 3;
  options.log(`aggregation: allocating ${updates} updates of ${CNN_PARAMS} floats…`);
  const vectors = makeUpdates(updates, CNN_PARAMS);
  const weights = vectors.map((_, k) => 100 + (k % 7) * 50);
  const out = new Float32Array(CNN_PARAMS);
  const scratch = new Float32Array(CNN_PARAMS);
  const candidates = {
    ours: () => weightedMean(vectors, weights, out),
    reference: () => blockedReadAndAdd(vectors, scratch),
    naive: () => naiveReadAndAdd(vectors, scratch),
  };
  const best = { ours: Infinity, reference: Infinity, naive: Infinity };
  // One untimed round to let V8 optimise, then interleaved rounds, so slow phases of a shared
  // machine hit every candidate alike.
  for (let round = 0; round <= repeats; round++) {
    for (const name of ["reference", "ours", "naive"] as const) {
      const seconds = await timeOnce(candidates[name]);
      if (round > 0) best[name] = Math.min(best[name], seconds);
    }
  }
  const totalBytes = updates * CNN_PARAMS * 4;
  const speedRatio = best.reference / best.ours;
  options.log(
    `aggregation: weightedMean ${best.ours.toFixed(3)} s, read-and-add ${best.reference.toFixed(3)} s, naive ${best.naive.toFixed(3)} s`,
  );
  return {
    updates,
    floatsPerUpdate: CNN_PARAMS,
    totalMB: sig(totalBytes / 1e6) ?? 0,
    seconds: sig(best.ours) ?? 0,
    referenceSeconds: sig(best.reference) ?? 0,
    speedRatio: sig(speedRatio, 3) ?? 0,
    ratio: sig(speedRatio, 3) ?? 0,
    throughputGBps: sig(totalBytes / best.ours / 1e9, 3) ?? 0,
    referenceThroughputGBps: sig(totalBytes / best.reference / 1e9, 3) ?? 0,
    naiveSeconds: sig(best.naive) ?? 0,
    naiveSpeedRatio: sig(best.naive / best.ours, 3) ?? 0,
    repeats,
  };
}
