/**
 * The elementwise parts of a fast-path training step (common/train/fast-path-trainer.ts) as plain loops
 * over row-major Float32Arrays. Each mirrors what TensorFlow.js's autodiff computes for the same expression in
 * common/train/trainer.ts, so the fast path and the tfjs path train to the same weights.
 */

/** The clip bounds of the trainer's cross-entropy: log(clip(p, 1e-7, 1)). */
export const PROB_CLIP_MIN = 1e-7;
export const PROB_CLIP_MAX = 1;

/** Row-wise softmax in place, shifted by the row maximum like tfjs's Softmax kernel. */
export function softmaxRowsInPlace(z: Float32Array, rows: number, cols: number): void {
  for (let r = 0; r < rows; r++) {
    const base = r * cols;
    let max = z[base];
    for (let c = 1; c < cols; c++) if (z[base + c] > max) max = z[base + c];
    let total = 0;
    for (let c = 0; c < cols; c++) {
      const e = Math.exp(z[base + c] - max);
      z[base + c] = e;
      total += e;
    }
    for (let c = 0; c < cols; c++) z[base + c] /= total;
  }
}

/**
 * dLoss/dLogits for loss = −mean_rows Σ_j y_j·log(clip(p_j, 1e-7, 1)), with p = softmax(logits).
 * As tfjs differentiates it: dp_j = −y_j / rows / clip(p_j) where 1e-7 ≤ p_j ≤ 1 and 0 elsewhere (the
 * ClipByValue gradient passes only inside its bounds), then softmax's backward dz = p ⊙ (dp − Σ_j dp_j p_j).
 * `dp` is scratch of the same size as `probs`.
 */
export function crossEntropySoftmaxGradient(
  probs: Float32Array,
  oneHot: Float32Array,
  rows: number,
  cols: number,
  dp: Float32Array,
  dz: Float32Array,
): void {
  const scale = -1 / rows;
  for (let r = 0; r < rows; r++) {
    const base = r * cols;
    let dot = 0;
    for (let c = 0; c < cols; c++) {
      const p = probs[base + c];
      const y = oneHot[base + c];
      const inside = p >= PROB_CLIP_MIN && p <= PROB_CLIP_MAX;
      const g = inside && y !== 0 ? (scale * y) / p : 0;
      dp[base + c] = g;
      dot += g * p;
    }
    for (let c = 0; c < cols; c++) dz[base + c] = (dp[base + c] - dot) * probs[base + c];
  }
}

/** db[c] = Σ_r dz[r, c]: a bias gradient, summed in double. */
export function columnSums(dz: Float32Array, rows: number, cols: number, out: Float32Array): void {
  for (let c = 0; c < cols; c++) {
    let total = 0;
    for (let r = 0; r < rows; r++) total += dz[r * cols + c];
    out[c] = total;
  }
}

/** Plain SGD: w ← w − lr·g. */
export function sgdUpdate(w: Float32Array, g: Float32Array, learningRate: number): void {
  const step = -learningRate;
  for (let i = 0; i < w.length; i++) w[i] += step * g[i];
}

/**
 * SGD on the loss plus FedProx's (mu/2)·||w − anchor||²: w ← w − lr·(g + mu·(w − anchor)).
 * The proximal gradient uses w before this update, as tfjs computes all gradients before applying them.
 */
export function proximalSgdUpdate(
  w: Float32Array,
  g: Float32Array,
  anchor: Float32Array,
  learningRate: number,
  mu: number,
): void {
  const step = -learningRate;
  for (let i = 0; i < w.length; i++) w[i] += step * (g[i] + mu * (w[i] - anchor[i]));
}
