import { clipToNorm } from "../../common/dp/clip.js";
import { ErrorCode, FedsimError } from "../../common/errors.js";
import { addPartialSums, type PartialSum, partialSum } from "../../common/strategy/partial-sum.js";
import type { AggregationInput, ClientFailure } from "../../common/strategy/strategy.js";
import type { FitSuccess } from "../client-proxy.js";
import type { RoundPlugin } from "../round-plugin.js";
import type { EdgeDispatch } from "./edge-dispatch.js";
import type { EdgeLinks } from "./edge-links.js";

/** How long the coordinator waits for one edge's partial sum once the round's outcomes are in. */
const SUM_TIMEOUT_MS = 60_000;

/**
 * Hierarchical aggregation as a round plugin. In "sum" mode the successes that came through an
 * edge carry no delta: the edge kept them, and here each edge is asked for one partial sum over
 * exactly the clients the coordinator accepted (a client cancelled or timed out at the
 * coordinator is left out even if its update reached the edge). Clients connected to the
 * coordinator itself are summed here the same way. Under central DP every update was clipped to
 * the round's clip norm before it entered a sum (at its edge, or here for the coordinator's own
 * clients), so the DP plugin after this one noises the total once. In "forward" mode the edges sent each update,
 * and the strategy gets them as individual updates.
 */
export class EdgeAggregationPlugin implements RoundPlugin {
  private bytesAtRoundStart = 0;

  constructor(
    private readonly dispatch: EdgeDispatch,
    private readonly links: EdgeLinks,
    private readonly weighting: "examples" | "uniform",
    private readonly log: (line: string) => void = () => {},
  ) {}

  prepareRound(): Record<string, never> {
    this.bytesAtRoundStart = this.links.bytesReceived;
    return {};
  }

  async collect(
    round: number,
    successes: FitSuccess[],
    _failures: ClientFailure[],
    previous: AggregationInput | null = null,
  ): Promise<AggregationInput | null> {
    const current = this.dispatch.current;
    // Under secure aggregation the edges hold masked inputs, which SecAgg's own collect sums and unmasks.
    if (current?.request.secagg) return previous;
    // Forwarded updates are individual updates like any other: a later part (DP) or the
    // composition (server/edges/edge-privacy.ts) decides what becomes of them.
    if (current?.mode !== "sum") return previous;
    const byEdge = new Map<string, string[]>();
    const local: FitSuccess[] = [];
    for (const s of successes) {
      const edgeId = current.edgeOf.get(s.clientId);
      if (edgeId === undefined) local.push(s);
      else {
        const ids = byEdge.get(edgeId);
        if (ids) ids.push(s.clientId);
        else byEdge.set(edgeId, [s.clientId]);
      }
    }
    const parts: (PartialSum & { clipped?: number })[] = await Promise.all(
      [...byEdge].map(async ([edgeId, clientIds]) => {
        const part = await this.links.requestSum(
          edgeId,
          { round: current.round, key: current.key, clientIds },
          SUM_TIMEOUT_MS,
        );
        if (part.count !== clientIds.length) {
          throw new FedsimError(
            ErrorCode.BAD_AGGREGATE,
            `edge ${edgeId} summed ${part.count} updates, ${clientIds.length} were asked for`,
          );
        }
        return part;
      }),
    );
    const clipNorm = current.clipNorm;
    if (local.length > 0) {
      // Central DP: the coordinator's own clients are clipped here, as each edge clips its own.
      const clipped =
        clipNorm === undefined ? 0 : local.filter((s) => clipToNorm(s.delta, clipNorm).clipped).length;
      parts.push({
        ...partialSum(
          local.map((s) => s.delta),
          local.map((s) => (this.weighting === "uniform" ? 1 : (s.numExamples ?? 0))),
        ),
        clipped,
      });
    }
    const clipped = parts.reduce((n, p) => n + (p.clipped ?? 0), 0);
    if (clipNorm !== undefined && clipped > 0) {
      this.log(
        `privacy: round ${round}: clipped ${clipped} update(s) that arrived with a norm above S=${clipNorm} (where their clients connect)`,
      );
    }
    if (parts.length === 0) return { kind: "individual", updates: [] };
    const total = addPartialSums(parts);
    return {
      kind: "sum",
      weightedDeltaSum: total.sum,
      totalWeight: total.totalWeight,
      count: total.count,
      clientIds: successes.map((s) => s.clientId),
    };
  }

  /** The bytes the coordinator took in from its edges this round, for the round record. */
  afterAggregate(): Record<string, number> {
    return { edgeIngressBytes: this.links.bytesReceived - this.bytesAtRoundStart };
  }
}
