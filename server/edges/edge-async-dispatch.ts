import { randomBytes } from "node:crypto";
import type { EdgeOutcome, EdgeRoundWeights, EdgeSealed } from "../../common/edge-protocol.js";
import { describeError, ErrorCode, FedsimError } from "../../common/errors.js";
import { totalSize } from "../../common/weights.js";
import type { ClientLimits } from "../client-limits.js";
import type { FitOutcome, FitRequest, FitSuccess } from "../client-proxy.js";
import { EDGE_GRACE_MS } from "./edge-dispatch.js";
import type { EdgeLinks } from "./edge-links.js";
import { openRelayed } from "./edge-sealed.js";
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
  /** Envelopes: the relayed sealed update, opened and accepted here, until the edge's outcome. */
  opened?: Omit<FitSuccess, "bytes">;
}

/**
 * The asynchronous loop's fits of clients that edges hold (FedBuff, FedAsync over edges). Fits
 * start one at a time across model versions, so each is its own request over the direct link to
 * the edge that holds the client (`edgeAsyncFit`), never a plan through Redis: a request through
 * the adapter goes to every server and waits for all of them, once per fit. The request carries
 * no weights; the edge fetches each version's weights once over its link, naming any fit of that
 * version, and forwards each update as it arrives, tagged with the version it trained on. Under
 * envelopes each request carries the fit's own key (the loop makes one per fit); the edge relays
 * the sealed update unopened (`edgeSealed`), it is opened and checked here as a client socket's
 * would be, and the edge's outcome, which then carries no update, finishes the fit. Every
 * way a fit can fail is an outcome with a code, as in rounds: the edge has no link or its link
 * closes (EDGE_LOST), the edge does not answer or no longer holds the client (EDGE_UNREACHABLE),
 * no word by the deadline (CLIENT_TIMEOUT).
 */
export class AsyncEdgeDispatch {
  /** Fits in flight, by key. */
  private readonly pending = new Map<string, PendingFit>();

  constructor(
    private readonly links: EdgeLinks,
    /** The coordinator's bounds on each update, for the sealed updates it opens itself. */
    private readonly limits: ClientLimits,
    /** An edge said it does not hold the client: its roster is out of date. */
    private readonly onNotHeld: (clientId: string, edgeId: string) => void = () => {},
  ) {}

  fit(clientId: string, edgeId: string, request: FitRequest, deadlineMs: number): Promise<FitOutcome> {
    return new Promise((resolve) => {
      if (request.dp || request.secagg || (request.envelope && !request.envelope.open)) {
        resolve(
          edgeFailure(
            clientId,
            "error",
            ErrorCode.INCOMPATIBLE_OPTIONS,
            "asynchronous fits over edges carry no DP or secure aggregation, and envelopes only with the coordinator's opener",
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
      const envelopeKey = request.envelope
        ? Buffer.from(request.envelope.publicKey).toString("hex")
        : undefined;
      const fit = {
        version: request.round,
        key,
        clientId,
        deadlineMs,
        config: request.config,
        ...(envelopeKey !== undefined ? { envelopeKey } : {}),
      };
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

  /** A sealed update an edge relayed for a fit in flight: opened and checked here; rejects with the code to refuse it with. */
  async onSealed(edgeId: string, sealed: EdgeSealed): Promise<void> {
    const entry = this.pending.get(sealed.key);
    if (!entry || entry.edgeId !== edgeId || entry.clientId !== sealed.clientId) {
      throw new FedsimError(
        ErrorCode.STALE_ROUND,
        `no fit of ${sealed.clientId} is in flight under that key`,
      );
    }
    if (!entry.request.envelope)
      throw new FedsimError(ErrorCode.BAD_PAYLOAD, "this run's updates are not sealed");
    if (entry.opened) {
      throw new FedsimError(ErrorCode.DUPLICATE, `an update from ${sealed.clientId} was already accepted`);
    }
    // The version is the envelope's round: the fit's opener refuses any other with STALE_ROUND.
    const accepted = await openRelayed(sealed, entry.request, this.limits);
    if (this.pending.get(sealed.key) !== entry) {
      throw new FedsimError(ErrorCode.STALE_ROUND, "the fit ended meanwhile");
    }
    entry.opened = accepted;
  }

  onOutcome(edgeId: string, outcome: EdgeOutcome): void {
    const entry = this.pending.get(outcome.key);
    if (!entry || entry.edgeId !== edgeId || entry.clientId !== outcome.clientId) return;
    if (outcome.round !== entry.request.round) return;
    if (outcome.ok && entry.request.envelope) {
      // The update arrived sealed; a plaintext one from the edge is not taken in its place.
      const message = `edge ${edgeId} reported an update the coordinator did not open`;
      const result =
        entry.opened ?? edgeFailure(outcome.clientId, "rejected", ErrorCode.BAD_PAYLOAD, message);
      this.finish(entry, { ...result, bytes: outcome.bytes });
      return;
    }
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
