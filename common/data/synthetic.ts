import { ErrorCode, FedsimError } from "../errors.js";
import { createRng, deriveSeed, type Rng, shuffleInPlace } from "../rng.js";
import { concatDatasets, type Dataset, subset, type TrainTest } from "./dataset.js";

/**
 * Synthetic(α, β) from FedProx (Li et al., MLSys 2020), following its reference generator
 * (data/synthetic_1_1/generate_synthetic.py and data/synthetic_iid/generate_iid.py in litian96/FedProx):
 *
 *   size_k  = floor(lognormal(4, 2)) + 50
 *   u_k ~ N(0, α²),  B_k ~ N(0, β²)               (α, β are standard deviations)
 *   v_k ~ N(B_k, 1) per feature,  Σ = diag(j^−1.2), j = 1..60
 *   x ~ N(v_k, Σ),  W_k ~ N(u_k, 1) (60×10),  b_k ~ N(u_k, 1)  (the reference reuses u_k for b)
 *   y = argmax(softmax(W_kᵀ x + b_k))
 *
 * β controls how much the local inputs differ. α is meant to make the local models differ, but
 * since u_k shifts every class's logit by the same u_k·(Σx + 1), it never changes an argmax: as in
 * the reference, the labels' skew comes from each device's own W_k, b_k and v_k. The IID
 * variant shares one W, b ~ N(0, 1) and draws every x ~ N(0, Σ); only the sizes still vary.
 * The numbers come from our seeded Rng, so they match the reference in distribution, not digit.
 */
export const SYNTHETIC_FEATURES = 60;
export const SYNTHETIC_CLASSES = 10;

export interface SyntheticOptions {
  alpha: number;
  beta: number;
  /** Default 30, as in the paper. */
  numDevices?: number;
  seed: number;
  /** The paper's "Synthetic IID" variant; alpha and beta are then unused. */
  iid?: boolean;
}

export function generateSynthetic(options: SyntheticOptions): { devices: Dataset[] } {
  const { alpha, beta, seed } = options;
  const numDevices = options.numDevices ?? 30;
  const iid = options.iid ?? false;
  for (const [field, value] of [
    ["alpha", alpha],
    ["beta", beta],
  ] as const) {
    if (!Number.isFinite(value) || value < 0) {
      throw new FedsimError(
        ErrorCode.INVALID_CONFIG,
        `synthetic: ${field} must be a finite number ≥ 0, got ${value}`,
      );
    }
  }
  if (!Number.isInteger(numDevices) || numDevices < 1) {
    throw new FedsimError(
      ErrorCode.INVALID_CONFIG,
      `synthetic: numDevices must be an integer ≥ 1, got ${numDevices}`,
    );
  }

  const sigmaSqrt = Float64Array.from({ length: SYNTHETIC_FEATURES }, (_, j) => Math.sqrt((j + 1) ** -1.2));
  // In the IID variant every device shares one model.
  const shared = iid ? drawModel(createRng(deriveSeed(seed, "synthetic", "iid-model")), 0) : undefined;
  const label = iid ? "synthetic-iid" : `synthetic(${alpha},${beta})`;

  // Each device gets its own stream, so device k does not change when numDevices does.
  const devices: Dataset[] = [];
  for (let k = 0; k < numDevices; k++) {
    const rng = createRng(deriveSeed(seed, "synthetic", iid ? "iid" : "niid", k));
    const size = Math.floor(Math.exp(4 + 2 * rng.normal())) + 50;
    let model: { w: Float64Array; b: Float64Array };
    const mean = new Float64Array(SYNTHETIC_FEATURES);
    if (shared) {
      model = shared;
    } else {
      const u = alpha * rng.normal();
      const bigB = beta * rng.normal();
      for (let j = 0; j < SYNTHETIC_FEATURES; j++) mean[j] = bigB + rng.normal();
      model = drawModel(rng, u);
    }
    devices.push(sampleDevice(rng, size, mean, sigmaSqrt, model, `${label}/device-${k}`));
  }
  return { devices };
}

/** W (features × classes, row-major) and b, every entry ~ N(mean, 1). */
function drawModel(rng: Rng, mean: number): { w: Float64Array; b: Float64Array } {
  const w = Float64Array.from({ length: SYNTHETIC_FEATURES * SYNTHETIC_CLASSES }, () => mean + rng.normal());
  const b = Float64Array.from({ length: SYNTHETIC_CLASSES }, () => mean + rng.normal());
  return { w, b };
}

function sampleDevice(
  rng: Rng,
  size: number,
  mean: Float64Array,
  sigmaSqrt: Float64Array,
  model: { w: Float64Array; b: Float64Array },
  name: string,
): Dataset {
  const x = new Float32Array(size * SYNTHETIC_FEATURES);
  const y = new Int32Array(size);
  const row = new Float64Array(SYNTHETIC_FEATURES);
  const logits = new Float64Array(SYNTHETIC_CLASSES);
  for (let i = 0; i < size; i++) {
    for (let j = 0; j < SYNTHETIC_FEATURES; j++) {
      row[j] = mean[j] + sigmaSqrt[j] * rng.normal();
      x[i * SYNTHETIC_FEATURES + j] = row[j];
    }
    logits.set(model.b);
    for (let j = 0; j < SYNTHETIC_FEATURES; j++) {
      for (let c = 0; c < SYNTHETIC_CLASSES; c++) logits[c] += row[j] * model.w[j * SYNTHETIC_CLASSES + c];
    }
    // argmax(softmax(z)) = argmax(z): softmax is monotone, so skip it.
    let best = 0;
    for (let c = 1; c < SYNTHETIC_CLASSES; c++) if (logits[c] > logits[best]) best = c;
    y[i] = best;
  }
  return { name, x, y, n: size, exampleShape: [SYNTHETIC_FEATURES], numClasses: SYNTHETIC_CLASSES };
}

/**
 * Splits each device's examples into train and test by a seeded permutation, as the paper does
 * (80/20 by default; the reference script used 90/10). Every side keeps at least one example.
 */
export function splitDevices(
  devices: readonly Dataset[],
  options: { seed: number; trainFraction?: number },
): { train: Dataset[]; test: Dataset[] } {
  const trainFraction = options.trainFraction ?? 0.8;
  if (!(trainFraction > 0 && trainFraction < 1)) {
    throw new FedsimError(
      ErrorCode.INVALID_CONFIG,
      `splitDevices: trainFraction must be in (0, 1), got ${trainFraction}`,
    );
  }
  const train: Dataset[] = [];
  const test: Dataset[] = [];
  devices.forEach((device, k) => {
    if (device.n < 2) {
      throw new FedsimError(
        ErrorCode.BAD_DATA,
        `splitDevices: "${device.name}" has ${device.n} example(s), need 2`,
      );
    }
    const order = Int32Array.from({ length: device.n }, (_, i) => i);
    shuffleInPlace(order, createRng(deriveSeed(options.seed, "device-split", k)));
    const nTrain = Math.min(device.n - 1, Math.max(1, Math.floor(trainFraction * device.n)));
    train.push(subset(device, order.subarray(0, nTrain), `${device.name}/train`));
    test.push(subset(device, order.subarray(nTrain), `${device.name}/test`));
  });
  return { train, test };
}

/**
 * Synthetic(α, β) as one TrainTest: train and test are the devices' shares concatenated, and
 * `groups` holds each example's device, for the natural partition (client k = device k).
 */
export function syntheticTrainTest(options: SyntheticOptions & { trainFraction?: number }): TrainTest {
  const { devices } = generateSynthetic(options);
  const { train, test } = splitDevices(devices, {
    seed: deriveSeed(options.seed, "synthetic-split"),
    trainFraction: options.trainFraction,
  });
  const ids = devices.map((_, k) => k);
  const name = options.iid ? "synthetic-iid" : `synthetic(${options.alpha},${options.beta})`;
  return {
    train: concatDatasets(train, `${name}/train`, ids),
    test: concatDatasets(test, `${name}/test`, ids),
    source: `generated: ${name}, ${devices.length} devices, seed ${options.seed}`,
  };
}
