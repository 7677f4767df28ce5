import { randomBytes } from "node:crypto";
import type { EdgeOutcome, EdgeRoundWeights } from "../../common/edge-protocol.js";
import { describeError, ErrorCode, FedsimError } from "../../common/errors.js";
import { totalSize } from "../../common/weights.js";
import type { FitOutcome, FitRequest } from "../client-proxy.js";
import { EDGE_GRACE_MS } from "./edge-dispatch.js";
import type { EdgeLinks } from "./edge-links.js";
import { edgeFailure, edgeWeightsOf, fitOutcomeFromEdge } from "./edge-wire.js";

/** How long an edge has to say it started a fit (it answers before fetching any weights). */
const START_TIMEOUT_MS = 10_000;

interface PendingFit {
  key: string;
  clientId: string;
  edgeId: string;
  request: FitRequest;
  resolve: (outcome: FitOutcome) => void;
  timer?: NodeJS.Timeout;
}

/**
 * The asynchronous loop's fits of clients that edges hold (FedBuff, FedAsync over edges). Fits
 * start one at a time across model versions, so each is its own request over the direct link to
 * the edge that holds the client (`edgeAsyncFit`), never a plan through Redis: a request through
 * the adapter goes to every server and waits for all of them, once per fit. The request carries
 * no weights; the edge fetches each version's weights once over its link, naming any fit of that
 * version, and forwards each update as it arrives, tagged with the version it trained on. Every
 * way a fit can fail is an outcome with a code, as in rounds: the edge has no link or its link
 * closes (EDGE_LOST), the edge does not answer or no longer holds the client (EDGE_UNREACHABLE),
 * no word by the deadline (CLIENT_TIMEOUT).
 */
export class AsyncEdgeDispatch {
  /** Fits in flight, by key. */
  private readonly pending = new Map<string, PendingFit>();

  constructor(
    private readonly links: EdgeLinks,
    /** An edge said it does not hold the client: its roster is out of date. */
    private readonly onNotHeld: (clientId: string, edgeId: string) => void = () => {},
  ) {}

  fit(clientId: string, edgeId: string, request: FitRequest, deadlineMs: number): Promise<FitOutcome> {
    return new Promise((resolve) => {
      if (request.envelope || request.dp || request.secagg) {
        resolve(
          edgeFailure(
            clientId,
            "error",
            ErrorCode.INCOMPATIBLE_OPTIONS,
            "asynchronous fits over edges carry no envelopes, DP or secure aggregation",
          ),
        );
        return;
      }
      const key = randomBytes(12).toString("hex");
      const entry: PendingFit = { key, clientId, edgeId, request, resolve };
      this.pending.set(key, entry);
      entry.timer = setTimeout(
        () =>
          this.finish(
            entry,
            edgeFailure(
              clientId,
              "timeout",
              ErrorCode.CLIENT_TIMEOUT,
              `no word from edge ${edgeId} within ${deadlineMs} ms`,
            ),
          ),
        deadlineMs + EDGE_GRACE_MS,
      );
      const fit = { version: request.round, key, clientId, deadlineMs, config: request.config };
      this.links.startFit(edgeId, fit, START_TIMEOUT_MS).then(
        (started) => {
          if (started) return;
          this.onNotHeld(clientId, edgeId);
          const message = `edge ${edgeId} does not hold ${clientId} any more`;
          this.finish(entry, edgeFailure(clientId, "disconnect", ErrorCode.EDGE_UNREACHABLE, message));
        },
        (err) => {
          const code = err instanceof FedsimError ? err.code : ErrorCode.EDGE_UNREACHABLE;
          this.finish(entry, edgeFailure(clientId, "disconnect", code, describeError(err)));
        },
      );
    });
  }

  cancel(clientId: string, version: number, reason: string): void {
    for (const entry of [...this.pending.values()]) {
      if (entry.clientId !== clientId || entry.request.round !== version) continue;
      this.links.cancel(entry.edgeId, { round: version, key: entry.key, clientId, reason });
      this.finish(entry, edgeFailure(clientId, "cancelled", ErrorCode.CANCELLED, reason));
    }
  }

  /** A version's weights, for an edge that names a fit of that version still in flight. */
  weightsFor(version: number, key: string): EdgeRoundWeights | null {
    const entry = this.pending.get(key);
    if (!entry || entry.request.round !== version) return null;
    return edgeWeightsOf(entry.request);
  }

  onOutcome(edgeId: string, outcome: EdgeOutcome): void {
    const entry = this.pending.get(outcome.key);
    if (!entry || entry.edgeId !== edgeId || entry.clientId !== outcome.clientId) return;
    if (outcome.round !== entry.request.round) return;
    this.finish(entry, fitOutcomeFromEdge(edgeId, outcome, totalSize(entry.request.weights.specs)));
  }

  /** The edge's link closed: the fits of its clients are lost, whatever version they trained on. */
  onLinkClosed(edgeId: string): void {
    for (const entry of [...this.pending.values()]) {
      if (entry.edgeId !== edgeId) continue;
      this.finish(
        entry,
        edgeFailure(
          entry.clientId,
          "disconnect",
          ErrorCode.EDGE_LOST,
          `edge ${edgeId} went away while the client trained on version ${entry.request.round}`,
        ),
      );
    }
  }

  private finish(entry: PendingFit, outcome: FitOutcome): void {
    if (this.pending.get(entry.key) !== entry) return;
    this.pending.delete(entry.key);
    clearTimeout(entry.timer);
    entry.resolve(outcome);
  }
}
