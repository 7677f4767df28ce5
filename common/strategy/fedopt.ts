import { ErrorCode, FedsimError } from "../errors.js";
import { type AdaptiveRule, adaptiveStepInPlace } from "./aggregate.js";
import { FedAvg, type FedAvgOptions } from "./fedavg.js";
import { decodeFloat32, encodeFloat32, stateObject } from "./state-codec.js";
import { requireHalfOpen, requirePositiveFinite } from "./validate.js";

export interface FedOptOptions extends FedAvgOptions {
  /** First-moment decay β1 in [0, 1); default 0.9. */
  beta1?: number;
  /** Second-moment decay β2 in [0, 1); default 0.99. Unused by FedAdagrad. */
  beta2?: number;
  /** Adaptivity τ > 0; default 1e-3. Also the initial √v (v₀ = τ²). */
  tau?: number;
}

/** Defaults of Reddi et al. 2021 §5 (β1, β2, τ) and Flower (η). */
export const FEDOPT_DEFAULTS = { serverLearningRate: 0.1, beta1: 0.9, beta2: 0.99, tau: 1e-3 } as const;

/**
 * Adaptive server optimisation (Reddi et al. 2021, "Adaptive Federated Optimization",
 * Algorithm 2). The clients run FedAvg's local SGD; the server treats the averaged delta Δ̄ as a
 * pseudo-gradient step and feeds it to Adagrad, Adam or Yogi:
 *   m ← β1·m + (1−β1)·Δ̄,  v ← rule(v, Δ̄²),  x ← x + η·m/(√v + τ)
 * (the rules are in `adaptiveStepInPlace`).
 *
 * Choices, and where they differ from Flower's fedadam.py / fedyogi.py / fedadagrad.py:
 * - v starts at τ², as in the paper's "v₋₁ ≥ τ²"; Flower starts v at 0. With v₀ = τ² the first
 *   step is η·(1−β1)·Δ̄/(√v₁ + τ), finite for every coordinate, Δ̄ = 0 included.
 * - τ defaults to 1e-3 (the paper's range is 1e-3…1e-1 for its tasks; Flower's 1e-9 makes the
 *   first step ≈ η·(1−β1)/√(1−β2)·sign(Δ̄) on every coordinate, noise included).
 * - η (serverLearningRate) defaults to 0.1, Flower's default. Tune it: the paper's best η spans
 *   1e-3…1 across tasks.
 * - FedAdagrad keeps β1 (default 0.9) as in the paper's Algorithm 2; Flower fixes β1 = 0 there.
 * - No bias correction, as in the paper and Flower.
 *
 * State: `{ rule, m, v }` with m and v as base64 Float32Arrays (null before the first
 * aggregation), restored bit-exactly so a resumed run continues identically.
 */
export class FedOpt extends FedAvg {
  override readonly name: string;
  readonly rule: AdaptiveRule;
  readonly beta1: number;
  readonly beta2: number;
  readonly tau: number;
  private m: Float32Array | null = null;
  private v: Float32Array | null = null;

  constructor(rule: AdaptiveRule, options: FedOptOptions = {}) {
    super({
      ...options,
      serverLearningRate: options.serverLearningRate ?? FEDOPT_DEFAULTS.serverLearningRate,
    });
    if (rule !== "adagrad" && rule !== "adam" && rule !== "yogi") {
      throw new FedsimError(ErrorCode.INVALID_CONFIG, `rule must be adagrad, adam or yogi, got ${rule}`);
    }
    this.rule = rule;
    this.name = `fed${rule}`;
    this.beta1 = options.beta1 ?? FEDOPT_DEFAULTS.beta1;
    this.beta2 = options.beta2 ?? FEDOPT_DEFAULTS.beta2;
    this.tau = options.tau ?? FEDOPT_DEFAULTS.tau;
    requireHalfOpen("beta1", this.beta1, 0, 1);
    requireHalfOpen("beta2", this.beta2, 0, 1);
    requirePositiveFinite("tau", this.tau);
  }

  protected override applyServerUpdate(
    current: Float32Array,
    combined: Float32Array,
    metrics: Record<string, number>,
  ): Float32Array {
    if (this.m === null || this.v === null) {
      this.m = new Float32Array(current.length);
      this.v = new Float32Array(current.length).fill(this.tau * this.tau);
    }
    if (this.m.length !== current.length || this.v.length !== current.length) {
      throw new FedsimError(
        ErrorCode.BAD_SHAPE,
        `${this.name}: optimiser state has ${this.m.length} values but the model has ${current.length}`,
      );
    }
    const next = current.slice();
    adaptiveStepInPlace(this.rule, next, this.m, this.v, combined, {
      beta1: this.beta1,
      beta2: this.beta2,
      tau: this.tau,
      learningRate: this.serverLearningRate,
    });
    metrics.serverStepNorm = distance(next, current);
    return next;
  }

  override state(): unknown {
    return {
      rule: this.rule,
      m: this.m === null ? null : encodeFloat32(this.m),
      v: this.v === null ? null : encodeFloat32(this.v),
    };
  }

  override restore(state: unknown): void {
    const s = stateObject(state, this.name);
    if (s.m === null || s.m === undefined || s.v === null || s.v === undefined) {
      this.m = null;
      this.v = null;
      return;
    }
    if (s.rule !== this.rule) {
      throw new FedsimError(
        ErrorCode.CHECKPOINT,
        `strategy state is for fed${String(s.rule)}, not ${this.name}: its moments mean something else`,
      );
    }
    const m = decodeFloat32(s.m, "m");
    const v = decodeFloat32(s.v, "v");
    if (m.length !== v.length) {
      throw new FedsimError(ErrorCode.CHECKPOINT, `strategy state: m has ${m.length} values, v ${v.length}`);
    }
    this.m = m;
    this.v = v;
  }
}

/** FedAdam: v ← β2·v + (1−β2)·Δ̄². */
export class FedAdam extends FedOpt {
  constructor(options: FedOptOptions = {}) {
    super("adam", options);
  }
}

/** FedYogi: v ← v − (1−β2)·Δ̄²·sign(v − Δ̄²); v grows or shrinks additively, never by a factor. */
export class FedYogi extends FedOpt {
  constructor(options: FedOptOptions = {}) {
    super("yogi", options);
  }
}

/** FedAdagrad: v ← v + Δ̄²; β2 is not used. */
export class FedAdagrad extends FedOpt {
  constructor(options: FedOptOptions = {}) {
    super("adagrad", options);
  }
}

function distance(a: Float32Array, b: Float32Array): number {
  let sum = 0;
  for (let i = 0; i < a.length; i++) {
    const d = a[i] - b[i];
    sum += d * d;
  }
  return Math.sqrt(sum);
}
