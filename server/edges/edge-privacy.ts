import { ErrorCode, FedsimError } from "../../common/errors.js";
import { ComposedPlugin } from "../plugins/compose.js";
import type { EdgeRequirements, RoundPlugin } from "../round-plugin.js";

const NO_PRIVACY: EdgeRequirements = { sealed: false, clipAtEdge: false, uniformWeights: false };

/**
 * What the run's privacy plugin asks of the edges (RoundPlugin.overEdges). A plugin that does not
 * say is refused with INCOMPATIBLE_OPTIONS: nothing would keep its promise once the updates stop
 * coming through the coordinator's own sockets.
 */
export function edgeRequirements(privacy: RoundPlugin | undefined): EdgeRequirements {
  if (!privacy) return NO_PRIVACY;
  if (!privacy.overEdges) {
    throw new FedsimError(
      ErrorCode.INCOMPATIBLE_OPTIONS,
      "edges (--redis): this round plugin does not say how it runs over edges (RoundPlugin.overEdges); run it on one coordinator",
    );
  }
  return privacy.overEdges;
}

/**
 * The edges' aggregation plugin followed by the run's privacy plugin, if any, in one round: the
 * edges' partial sums first (under secure aggregation they step aside and SecAgg sums the edges'
 * masked sums; forwarded updates pass through), then privacy as on one coordinator, so DP noises
 * the edges' total once. Forwarded updates that no part turns into a sum reach the strategy one by
 * one. Checkpoints hold the privacy plugin's state as it is, so a run resumes with or without edges.
 */
export class EdgesWithPrivacy extends ComposedPlugin {
  constructor(
    edges: RoundPlugin,
    private readonly privacy?: RoundPlugin,
  ) {
    super(privacy ? { edges, privacy } : { edges });
  }

  override state(): Record<string, unknown> {
    return (this.privacy?.state?.() ?? {}) as Record<string, unknown>;
  }

  override restore(state: unknown): void {
    this.privacy?.restore?.(state);
  }
}
