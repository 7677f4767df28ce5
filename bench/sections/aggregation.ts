import { loadConfiguredAddon } from "../../common/native/addon.js";
import { weightedMean } from "../../common/strategy/aggregate.js";
import { vectorPassesImplementation } from "../../common/vector-passes.js";
import { buildAggregationReference } from "../references/aggregation-reference.js";
import { median, sig, timeOnce } from "../timing.js";

/**
 * FedAvg's server-side cost: weightedMean over 100 client updates the size of the FedAvg CNN
 * (1,663,370 floats, 665 MB in all, every update its own buffer), against the physical limit of that
 * work: bench/references/aggregation_reference.cc, a weighted sum compiled for this very CPU
 * (-O3 -march=native), cache-blocked so each byte is read from memory once, on as many threads as
 * fedsim's native loops use. Both read the same buffers in the same process, timed in interleaved rounds.
 */
export interface AggregationSection {
  updates: number;
  floatsPerUpdate: number;
  totalMB: number;
  /** "native" (the addon's SIMD loops) or "js", and why. */
  implementation: string;
  /** The OpenMP threads of fedsim's native loops, and so of the reference (1 for the JS loops). */
  threads: number;
  /** Best-of-repeats seconds of weightedMean (memory-bound work: the fastest run is the least disturbed). */
  seconds: number;
  /** Best-of-repeats seconds of the native reference at `threads` threads; null when it could not be built. */
  referenceSeconds: number | null;
  /** referenceSeconds ÷ seconds: the fraction of the physical limit fedsim reaches (1 = as fast). */
  ratio: number | null;
  /** The median-of-repeats ratio, for a sense of the spread behind the best-of one. */
  medianRatio: number | null;
  throughputGBps: number;
  referenceThroughputGBps: number | null;
  /** How the reference was compiled, or why it is missing. */
  reference: string;
  /** Largest |fedsim − reference| over the output, relative to the largest |output|: both compute the same sum. */
  maxRelativeDifference: number | null;
  repeats: number;
}

export const CNN_PARAMS = 1_663_370;

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

function maxRelativeDifference(a: Float32Array, b: Float32Array): number {
  let diff = 0;
  let scale = 0;
  for (let i = 0; i < a.length; i++) {
    diff = Math.max(diff, Math.abs(a[i] - b[i]));
    scale = Math.max(scale, Math.abs(a[i]));
  }
  return scale === 0 ? diff : diff / scale;
}

/** The thread count of fedsim's native loops (the addon's OpenMP team), or 1 when they run in JavaScript. */
function fedsimThreads(): number {
  if (vectorPassesImplementation().implementation !== "native") return 1;
  return loadConfiguredAddon().addon?.info().threads ?? 1;
}

export async function runAggregation(options: {
  quick: boolean;
  log: (line: string) => void;
}): Promise<AggregationSection> {
  const updates = 100;
  const repeats = options.quick ? 3 : 7;
  options.log(`aggregation: allocating ${updates} updates of ${CNN_PARAMS} floats…`);
  const vectors = makeUpdates(updates, CNN_PARAMS);
  const weights = vectors.map((_, k) => 100 + (k % 7) * 50);
  const total = weights.reduce((a, b) => a + b, 0);
  const factors = Float32Array.from(weights, (w) => w / total);
  const out = new Float32Array(CNN_PARAMS);
  const referenceOut = new Float32Array(CNN_PARAMS);
  // The first call loads the addon: its thread count is known only afterwards.
  weightedMean(vectors, weights, out);
  const implementation = vectorPassesImplementation();
  const threads = fedsimThreads();
  const reference = await buildAggregationReference();
  const samples = { ours: [] as number[], reference: [] as number[] };
  try {
    // One untimed round, then interleaved rounds, so slow phases of a shared machine hit both alike.
    for (let round = 0; round <= repeats; round++) {
      const ours = await timeOnce(() => weightedMean(vectors, weights, out));
      const ref =
        typeof reference === "string"
          ? null
          : await timeOnce(() => reference.weightedSum(vectors, factors, referenceOut, threads));
      if (round === 0) continue;
      samples.ours.push(ours);
      if (ref !== null) samples.reference.push(ref);
    }
  } finally {
    if (typeof reference !== "string") reference.dispose();
  }
  const totalBytes = updates * CNN_PARAMS * 4;
  const best = Math.min(...samples.ours);
  const bestReference = samples.reference.length > 0 ? Math.min(...samples.reference) : null;
  const ratio = bestReference === null ? null : bestReference / best;
  const medianRatio = bestReference === null ? null : median(samples.reference) / median(samples.ours);
  options.log(
    `aggregation: weightedMean ${best.toFixed(4)} s, native reference ${bestReference?.toFixed(4) ?? "–"} s on ${threads} thread(s)` +
      (typeof reference === "string" ? ` (${reference})` : ""),
  );
  return {
    updates,
    floatsPerUpdate: CNN_PARAMS,
    totalMB: sig(totalBytes / 1e6) ?? 0,
    implementation: `${implementation.implementation}: ${implementation.reason}`,
    threads,
    seconds: sig(best) ?? 0,
    referenceSeconds: sig(bestReference),
    ratio: sig(ratio, 3),
    medianRatio: sig(medianRatio, 3),
    throughputGBps: sig(totalBytes / best / 1e9, 3) ?? 0,
    referenceThroughputGBps: bestReference === null ? null : sig(totalBytes / bestReference / 1e9, 3),
    reference: typeof reference === "string" ? reference : reference.command,
    maxRelativeDifference:
      typeof reference === "string" ? null : sig(maxRelativeDifference(out, referenceOut), 2),
    repeats,
  };
}
