import { ErrorCode, FedsimError } from "../errors.js";
import { momentumStepInPlace } from "./aggregate.js";
import { FedAvg, type FedAvgOptions } from "./fedavg.js";
import { decodeFloat32, encodeFloat32, stateObject } from "./state-codec.js";
import { requireHalfOpen } from "./validate.js";

export interface FedAvgMOptions extends FedAvgOptions {
  /** Server momentum β in [0, 1); default 0.9 (Hsu et al. 2019). β = 0 is FedAvg with server lr η. */
  momentum?: number;
}

/** Default server momentum. Flower's default is 0, which makes FedAvgM plain FedAvg. */
export const DEFAULT_SERVER_MOMENTUM = 0.9;

/**
 * FedAvgM (Hsu et al. 2019, "Measuring the effects of non-identical data distribution"): FedAvg
 * whose server applies momentum to the averaged delta,
 *   v ← β·v + Δ̄,   x ← x + η·v,   v₀ = 0.
 * This is Flower's fedavgm.py (PyTorch SGD convention, no dampening, no Nesterov) written with
 * deltas instead of pseudo-gradients g = −Δ̄; the models it produces are the same. The effective
 * step is about η/(1 − β) (10× at β = 0.9), so Hsu et al. lower η or the client learning rate
 * when they raise β. Default η = 1.
 *
 * State: `{ momentum: base64 Float32Array | null }` (null before the first aggregation).
 */
export class FedAvgM extends FedAvg {
  override readonly name: string = "fedavgm";
  readonly momentum: number;
  private velocity: Float32Array | null = null;

  constructor(options: FedAvgMOptions = {}) {
    super(options);
    this.momentum = options.momentum ?? DEFAULT_SERVER_MOMENTUM;
    requireHalfOpen("momentum", this.momentum, 0, 1);
  }

  protected override applyServerUpdate(
    current: Float32Array,
    combined: Float32Array,
    metrics: Record<string, number>,
  ): Float32Array {
    if (this.velocity === null) this.velocity = new Float32Array(current.length);
    if (this.velocity.length !== current.length) {
      throw new FedsimError(
        ErrorCode.BAD_SHAPE,
        `fedavgm: momentum has ${this.velocity.length} values but the model has ${current.length}`,
      );
    }
    const next = current.slice();
    momentumStepInPlace(next, this.velocity, combined, this.momentum, this.serverLearningRate);
    metrics.momentumNorm = norm(this.velocity);
    return next;
  }

  override state(): unknown {
    return { momentum: this.velocity === null ? null : encodeFloat32(this.velocity) };
  }

  override restore(state: unknown): void {
    const s = stateObject(state, this.name);
    this.velocity =
      s.momentum === null || s.momentum === undefined ? null : decodeFloat32(s.momentum, "momentum");
  }
}

function norm(values: Float32Array): number {
  let sum = 0;
  for (let i = 0; i < values.length; i++) sum += values[i] * values[i];
  return Math.sqrt(sum);
}
