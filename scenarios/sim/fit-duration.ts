import { ErrorCode, FedsimError } from "../../common/errors.js";

/**
 * How long a fit takes on the virtual clock, in simulated seconds:
 *
 *   download = latency + bytesDown · 8 / downlink
 *   compute  = examples · epochs · secondsPerExample / speed
 *   upload   = latency + bytesUp · 8 / uplink
 *
 * Bytes are the real payload sizes; rates are in Mbit/s (10^6 bit/s); latency in milliseconds.
 */

/** The device side of the formula. */
export interface FitDevice {
  downlinkMbps: number;
  uplinkMbps: number;
  latencyMs: number;
  /** Relative compute speed: the compute phase is divided by it. */
  speed: number;
  /** Seconds per example per epoch at speed 1. */
  secondsPerExample: number;
}

/** The work side: payload bytes each way, and the training asked for. */
export interface FitWork {
  bytesDown: number;
  bytesUp: number;
  examples: number;
  epochs: number;
}

/** Each phase's simulated seconds, and their sum. */
export interface FitPhases {
  download: number;
  compute: number;
  upload: number;
  total: number;
}

function requireAtLeast(name: string, value: number, min: number, strict: boolean): void {
  const ok = strict ? value > min : value >= min;
  if (!ok || !Number.isFinite(value)) {
    throw new FedsimError(
      ErrorCode.INVALID_CONFIG,
      `${name} must be a finite number ${strict ? ">" : "≥"} ${min}, got ${value}`,
    );
  }
}

/** One transfer: latency, then the bytes at the link rate. */
export function transferSeconds(bytes: number, mbps: number, latencyMs: number): number {
  requireAtLeast("bytes", bytes, 0, false);
  requireAtLeast("link rate (Mbit/s)", mbps, 0, true);
  requireAtLeast("latencyMs", latencyMs, 0, false);
  return latencyMs / 1000 + (bytes * 8) / (mbps * 1e6);
}

export function computeSeconds(examples: number, epochs: number, secondsPerExample: number, speed: number) {
  requireAtLeast("examples", examples, 0, false);
  requireAtLeast("epochs", epochs, 0, false);
  requireAtLeast("secondsPerExample", secondsPerExample, 0, false);
  requireAtLeast("speed", speed, 0, true);
  return (examples * epochs * secondsPerExample) / speed;
}

/**
 * What evaluating one example costs, as a fraction of training on it for one epoch. Training an
 * example runs a forward pass, a backward pass that costs about twice the forward (the gradients
 * with respect to both the activations and the weights), and the update; evaluation runs the
 * forward pass alone. Kaplan et al. 2020 ("Scaling Laws for Neural Language Models", §2.1) count
 * 2N FLOPs forward and 6N for training per token of an N-parameter model: a third.
 */
export const EVALUATION_COST = 1 / 3;

/** The device's compute for a federated evaluation of `examples` examples (one forward pass each). */
export function evaluationSeconds(examples: number, secondsPerExample: number, speed: number): number {
  return computeSeconds(examples, EVALUATION_COST, secondsPerExample, speed);
}

export function fitPhases(device: FitDevice, work: FitWork): FitPhases {
  const download = transferSeconds(work.bytesDown, device.downlinkMbps, device.latencyMs);
  const compute = computeSeconds(work.examples, work.epochs, device.secondsPerExample, device.speed);
  const upload = transferSeconds(work.bytesUp, device.uplinkMbps, device.latencyMs);
  return { download, compute, upload, total: download + compute + upload };
}

/**
 * Seconds until a device with a constant dropout hazard (per hour) drops, from a uniform `u` in
 * (0, 1): the exponential's inverse CDF. Infinity for a hazard of 0.
 */
export function dropoutDelaySeconds(hazardPerHour: number, u: number): number {
  requireAtLeast("dropoutPerHour", hazardPerHour, 0, false);
  if (!(u > 0 && u < 1)) throw new FedsimError(ErrorCode.INTERNAL, `u must be in (0, 1), got ${u}`);
  if (hazardPerHour === 0) return Number.POSITIVE_INFINITY;
  return (-Math.log(u) / hazardPerHour) * 3600;
}

export interface MeasureOptions {
  /** Examples per timed call. */
  examples?: number;
  /** Untimed calls first (JIT, kernel selection, allocation). */
  warmup?: number;
  /** Timed calls; the median is taken, so one slow call on a busy machine does not decide. */
  repeats?: number;
  /** Clock in milliseconds; performance.now by default (tests inject their own). */
  now?: () => number;
}

/**
 * Seconds per example per epoch for a model on this machine: times `train(k)`, a callback that
 * trains on k examples once. The result depends on the machine and its load, so runs that use it
 * are not bit-reproducible across machines: a scenario that must reproduce exactly pins the number.
 */
export async function measureSecondsPerExample(
  train: (examples: number) => unknown,
  options: MeasureOptions = {},
): Promise<number> {
  const examples = options.examples ?? 256;
  const warmup = options.warmup ?? 1;
  const repeats = options.repeats ?? 3;
  const now = options.now ?? (() => performance.now());
  if (!(Number.isInteger(examples) && examples > 0)) {
    throw new FedsimError(ErrorCode.INVALID_CONFIG, `examples must be an integer > 0, got ${examples}`);
  }
  if (!(Number.isInteger(warmup) && warmup >= 0) || !(Number.isInteger(repeats) && repeats > 0)) {
    throw new FedsimError(
      ErrorCode.INVALID_CONFIG,
      `warmup must be an integer ≥ 0 and repeats > 0, got ${warmup} and ${repeats}`,
    );
  }
  for (let i = 0; i < warmup; i++) await train(examples);
  const perExample: number[] = [];
  for (let i = 0; i < repeats; i++) {
    const start = now();
    await train(examples);
    perExample.push((now() - start) / 1000 / examples);
  }
  perExample.sort((a, b) => a - b);
  const mid = perExample.length >> 1;
  const median = perExample.length % 2 === 1 ? perExample[mid] : (perExample[mid - 1] + perExample[mid]) / 2;
  if (!(median > 0)) {
    throw new FedsimError(ErrorCode.INTERNAL, `measured seconds per example is ${median}, not > 0`);
  }
  return median;
}
