import type { ClientBehaviour } from "../../client/node.js";
import { ErrorCode, FedsimError } from "../../common/errors.js";
import { createRng, deriveSeed } from "../../common/rng.js";

/**
 * Stragglers as in FedProx (Li et al., MLSys 2020, §5.2): each round, "x% of devices" cannot
 * finish the requested E local epochs and do only a random number of them. The reference code
 * (litian96/FedProx, trainers/fedprox.py) draws `np.random.randint(low=1, high=E)`, i.e. uniform
 * in [1, E − 1], so a straggler always does partial work; we do the same. With E = 1 there is no
 * partial epoch to do, and a straggler does its 1 epoch.
 *
 * A client cannot see which others were sampled, so the paper's "x% of the selected devices" is
 * a seeded coin per client and round with probability `fraction`: about x% of each round's
 * sample, exactly x% on average.
 */
export interface StragglerOptions {
  /** Probability that a client straggles in a given round, in [0, 1]. */
  fraction: number;
  /** Seed of the per-round coins; the scenario's seed when absent. */
  seed: number;
}

/** Epochs a client trains in `round` when `requested` were asked for: `requested`, or fewer. */
export function stragglerEpochs(
  options: StragglerOptions,
  clientIndex: number,
  round: number,
  requested: number,
): number {
  const { fraction, seed } = options;
  if (!(fraction >= 0 && fraction <= 1)) {
    throw new FedsimError(ErrorCode.INVALID_CONFIG, `stragglers.fraction must be in [0, 1], got ${fraction}`);
  }
  if (!Number.isInteger(requested) || requested < 1) {
    throw new FedsimError(
      ErrorCode.INVALID_CONFIG,
      `requested epochs must be an integer ≥ 1, got ${requested}`,
    );
  }
  const rng = createRng(deriveSeed(seed, "straggler", clientIndex, round));
  if (!(rng.next() < fraction)) return requested;
  return requested > 1 ? 1 + rng.int(requested - 1) : 1;
}

export function stragglerBehaviour(options: StragglerOptions, clientIndex: number): ClientBehaviour {
  return {
    epochsForRound: (round, requested) => stragglerEpochs(options, clientIndex, round, requested),
  };
}
