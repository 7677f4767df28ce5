import type { ClientBehaviour } from "../../client/node.js";
import type { RawUpdate } from "../../client/update-pipeline.js";
import type { Dataset } from "../../common/data/dataset.js";
import { ErrorCode, FedsimError } from "../../common/errors.js";
import { createRng, deriveSeed, type Rng, sampleWithoutReplacement } from "../../common/rng.js";

/**
 * Byzantine clients for robustness experiments. An attacker runs the same protocol as an honest
 * client (handshake, training, privacy steps, envelope, signature): only its data or its delta
 * differ, so the coordinator cannot tell it apart except by what the update contains.
 *
 * - labelFlip: data poisoning, y → numClasses − 1 − y on the attacker's own copy of its data.
 * - signFlip: −Δ. scale: κ·Δ. signFlipScale: −κ·Δ (a model-replacement-style boost).
 * - gaussian: Δ replaced by N(0, σ²) noise (Blanchard et al. 2017's Gaussian Byzantine worker).
 * - sameValue: every coordinate = c (Li et al. 2019's same-value attack).
 */
export const ATTACK_NAMES = [
  "labelFlip",
  "signFlip",
  "scale",
  "signFlipScale",
  "gaussian",
  "sameValue",
] as const;
export type AttackName = (typeof ATTACK_NAMES)[number];

export const DEFAULT_ATTACK_SCALE = 10;
export const DEFAULT_ATTACK_STDDEV = 1;
export const DEFAULT_ATTACK_VALUE = 1;

export interface AttackConfig {
  attack: AttackName;
  /** κ for scale and signFlipScale (default 10). */
  scale?: number;
  /** σ for gaussian (default 1). */
  stddev?: number;
  /** c for sameValue (default 1). */
  value?: number;
}

/** Which clients attack: explicit indices, or `count` of them. */
export type AttackerSelection = number[] | { count: number };

/** −Δ, as a new array. */
export function signFlipDelta(delta: Float32Array): Float32Array {
  return scaleDelta(delta, -1);
}

/** κ·Δ, as a new array. */
export function scaleDelta(delta: Float32Array, kappa: number): Float32Array {
  requireFinite("scale", kappa);
  const out = new Float32Array(delta.length);
  for (let i = 0; i < delta.length; i++) out[i] = kappa * delta[i];
  return out;
}

/** `length` draws of N(0, σ²); the attacker's delta carries no information about its data. */
export function gaussianDelta(length: number, stddev: number, rng: Rng): Float32Array {
  if (!(Number.isFinite(stddev) && stddev >= 0)) {
    throw new FedsimError(ErrorCode.INVALID_CONFIG, `stddev must be a finite number ≥ 0, got ${stddev}`);
  }
  const out = new Float32Array(length);
  for (let i = 0; i < length; i++) out[i] = stddev * rng.normal();
  return out;
}

/** Every coordinate set to `value`. */
export function sameValueDelta(length: number, value: number): Float32Array {
  requireFinite("value", value);
  return new Float32Array(length).fill(value);
}

/**
 * The attacked delta for one round. `rng` is only drawn from by the gaussian attack; labelFlip
 * leaves the delta alone (its damage is already in the training data).
 */
export function attackDelta(delta: Float32Array, config: AttackConfig, rng: Rng): Float32Array {
  switch (config.attack) {
    case "labelFlip":
      return delta;
    case "signFlip":
      return signFlipDelta(delta);
    case "scale":
      return scaleDelta(delta, config.scale ?? DEFAULT_ATTACK_SCALE);
    case "signFlipScale":
      return scaleDelta(delta, -(config.scale ?? DEFAULT_ATTACK_SCALE));
    case "gaussian":
      return gaussianDelta(delta.length, config.stddev ?? DEFAULT_ATTACK_STDDEV, rng);
    case "sameValue":
      return sameValueDelta(delta.length, config.value ?? DEFAULT_ATTACK_VALUE);
    default:
      throw new FedsimError(
        ErrorCode.INVALID_CONFIG,
        `attack: unknown "${String((config as { attack: unknown }).attack)}"; choose one of ${ATTACK_NAMES.join(", ")}`,
      );
  }
}

/** y → numClasses − 1 − y, as a new array (labels outside [0, numClasses) are refused). */
export function flipLabels(y: Int32Array, numClasses: number): Int32Array {
  if (!Number.isInteger(numClasses) || numClasses < 1) {
    throw new FedsimError(ErrorCode.INVALID_CONFIG, `numClasses must be an integer ≥ 1, got ${numClasses}`);
  }
  const out = new Int32Array(y.length);
  for (let i = 0; i < y.length; i++) {
    const label = y[i];
    if (label < 0 || label >= numClasses) {
      throw new FedsimError(ErrorCode.BAD_DATA, `label y[${i}] = ${label} is outside [0, ${numClasses})`);
    }
    out[i] = numClasses - 1 - label;
  }
  return out;
}

/**
 * The attacker's own poisoned copy of its partition. Partitions may be shared with other
 * consumers (loaders cache datasets), so the labels are copied, never flipped in place; the
 * features are read-only and shared.
 */
export function labelFlippedCopy(ds: Dataset): Dataset {
  return { ...ds, y: flipLabels(ds.y, ds.numClasses) };
}

/**
 * The attacking client indices, sorted. `{ count }` draws that many distinct clients from a
 * stream seeded by the scenario's seed, so the same scenario always has the same attackers
 * (across a sweep's strategies and across pool processes) and they are not tied to any order
 * the partitioner might have.
 */
export function attackerIndices(selection: AttackerSelection, clients: number, seed: number): number[] {
  if (!Number.isInteger(clients) || clients < 1) {
    throw new FedsimError(ErrorCode.INVALID_CONFIG, `clients must be an integer ≥ 1, got ${clients}`);
  }
  if (Array.isArray(selection)) {
    for (const index of selection) {
      if (!Number.isInteger(index) || index < 0 || index >= clients) {
        throw new FedsimError(
          ErrorCode.INVALID_CONFIG,
          `attackers.clients: index ${index} is outside [0, ${clients})`,
        );
      }
    }
    return [...new Set(selection)].sort((a, b) => a - b);
  }
  const { count } = selection;
  if (!Number.isInteger(count) || count < 0 || count > clients) {
    throw new FedsimError(
      ErrorCode.INVALID_CONFIG,
      `attackers.clients.count must be an integer in [0, ${clients}], got ${count}`,
    );
  }
  return sampleWithoutReplacement(clients, count, createRng(deriveSeed(seed, "attackers"))).sort(
    (a, b) => a - b,
  );
}

/**
 * The behaviour of one attacking client: rewrites its raw update (before clipping, noise and
 * encryption, as a real attacker controlling its own device would). The gaussian attack's noise
 * is seeded per client and round, so reruns attack identically.
 */
export function attackerBehaviour(config: AttackConfig, seed: number): ClientBehaviour {
  if (config.attack === "labelFlip") return {};
  return {
    transformUpdate(update: RawUpdate, round: number): RawUpdate {
      const rng = createRng(deriveSeed(seed, "attack", round));
      return { ...update, delta: attackDelta(update.delta, config, rng) };
    },
  };
}

function requireFinite(name: string, value: number): void {
  if (!Number.isFinite(value)) {
    throw new FedsimError(ErrorCode.INVALID_CONFIG, `${name} must be a finite number, got ${value}`);
  }
}
