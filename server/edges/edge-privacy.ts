import { ComposedPlugin } from "../plugins/compose.js";
import type { RoundPlugin } from "../round-plugin.js";

/**
 * The edges' aggregation plugin followed by the run's privacy plugin, in one round: the edges'
 * partial sums first (under secure aggregation they step aside and SecAgg sums the edges' masked
 * sums), then privacy as on one coordinator. Checkpoints hold the privacy plugin's state as it
 * is, so a run resumes with or without edges.
 */
export class EdgesWithPrivacy extends ComposedPlugin {
  constructor(
    edges: RoundPlugin,
    private readonly privacy: RoundPlugin,
  ) {
    super({ edges, privacy });
  }

  override state(): Record<string, unknown> {
    return (this.privacy.state?.() ?? {}) as Record<string, unknown>;
  }

  override restore(state: unknown): void {
    this.privacy.restore?.(state);
  }
}

/**
 * What of a privacy plugin cannot run over edges yet, or null when all of it can: secure
 * aggregation, and DP on top of it, take the same path as on one coordinator.
 */
export function notYetOverEdges(privacy: RoundPlugin): string | null {
  const parts = privacy instanceof ComposedPlugin ? privacy.partNames : ["custom"];
  if (parts.includes("secagg") && parts.every((p) => p === "secagg" || p === "dp")) return null;
  return "edges (--redis) cannot yet be combined with envelopes, or with DP without secure aggregation; run those on one coordinator";
}
