import type { Socket } from "socket.io-client";
import {
  type CoordinatorToEdgeEvents,
  type EdgeAsyncFit,
  type EdgeToCoordinatorEvents,
  edgeAsyncFitSchema,
  edgeCancelSchema,
} from "../../common/edge-protocol.js";
import { describeError, ErrorCode } from "../../common/errors.js";
import { formatZodIssues, safeParseUntrusted } from "../../common/protocol.js";
import type { ClientProxy } from "../client-proxy.js";
import { EdgeRound } from "./edge-round.js";
import { type VersionWeights, withEnvelope } from "./edge-uplink.js";
import { VersionCache } from "./version-cache.js";

type Link = Socket<CoordinatorToEdgeEvents, EdgeToCoordinatorEvents>;

/** One fit at this edge: waiting for its version's weights (`round` null), then training. */
interface RunningFit {
  fit: EdgeAsyncFit;
  round: EdgeRound | null;
  cancelled: boolean;
}

/**
 * An edge's side of asynchronous strategies (FedBuff, FedAsync): the coordinator sends each fit
 * over the link (`edgeAsyncFit`); the edge answers at once whether it holds the client, fetches
 * the fit's model version over the link unless it already has it (VersionCache: once per version,
 * however many of its clients train on it), runs the fit through the same `SocketClientProxy`
 * validation as any round (one `EdgeRound` in forward mode), and forwards the update with its
 * outcome, tagged with the version (`round`) and the fit's key. Under envelopes the fit carries the
 * coordinator's key for it: the client seals to it and the edge relays the sealed update unopened
 * over the link (`edgeSealed`), as in a round; its outcome then carries no update.
 */
export class EdgeAsyncFits {
  private readonly running = new Map<string, RunningFit>();
  private readonly versions: VersionCache<VersionWeights>;

  constructor(
    private readonly link: Link,
    private readonly options: {
      edgeId: string;
      /** The client of this id this edge holds now, if any. */
      client: (clientId: string) => ClientProxy | undefined;
      fetchWeights: (version: number, key: string) => Promise<VersionWeights>;
      log: (line: string) => void;
    },
  ) {
    this.versions = new VersionCache(options.fetchWeights);
    link.on("edgeAsyncFit", (raw, ack) => {
      const reply = typeof ack === "function" ? ack : () => {};
      const parsed = safeParseUntrusted(edgeAsyncFitSchema, raw);
      if (!parsed.success) {
        const why = formatZodIssues(parsed.error).slice(0, 3).join("; ");
        return reply({ ok: false, code: ErrorCode.BAD_PAYLOAD, message: `malformed edgeAsyncFit: ${why}` });
      }
      reply({ ok: true, started: this.start(parsed.data) });
    });
    link.on("edgeCancel", (raw) => {
      const parsed = safeParseUntrusted(edgeCancelSchema, raw);
      if (parsed.success) this.cancel(parsed.data.key, parsed.data.clientId, parsed.data.reason);
    });
  }

  /** Model versions held for fits now (for tests: old ones are dropped). */
  heldVersions(): number[] {
    return this.versions.held();
  }

  /** Calls off every fit (the edge is closing). */
  abandon(reason: string): void {
    for (const running of this.running.values()) {
      running.cancelled = true;
      running.round?.abandon(reason);
    }
    this.running.clear();
  }

  private start(fit: EdgeAsyncFit): boolean {
    const client = this.options.client(fit.clientId);
    if (!client || !this.link.connected || this.running.has(fit.key)) return false;
    const running: RunningFit = { fit, round: null, cancelled: false };
    this.running.set(fit.key, running);
    void this.run(running, client);
    return true;
  }

  private async run(running: RunningFit, client: ClientProxy): Promise<void> {
    const { fit } = running;
    let version: VersionWeights;
    try {
      version = await this.versions.acquire(fit.version, fit.key);
    } catch (err) {
      this.running.delete(fit.key);
      const message = `edge ${this.options.edgeId} could not fetch version ${fit.version}: ${describeError(err)}`;
      this.options.log(message);
      this.link.emit("edgeOutcome", {
        ok: false,
        round: fit.version,
        key: fit.key,
        clientId: fit.clientId,
        reason: "error",
        code: ErrorCode.EDGE_LOST,
        message,
      });
      return;
    }
    if (running.cancelled) {
      this.running.delete(fit.key);
      this.versions.release(fit.version);
      return;
    }
    const plan = {
      round: fit.version,
      key: fit.key,
      deadlineMs: fit.deadlineMs,
      config: fit.config,
      mode: "forward" as const,
      weighting: "examples" as const,
      assignments: {},
      ...(fit.envelopeKey !== undefined ? { envelopeKey: fit.envelopeKey } : {}),
    };
    const request = withEnvelope({ round: fit.version, config: fit.config, ...version }, plan, this.link);
    running.round = new EdgeRound(plan, request, (outcome) => {
      this.running.delete(fit.key);
      this.versions.release(fit.version);
      this.link.emit("edgeOutcome", outcome);
    });
    running.round.start([client]);
  }

  private cancel(key: string, clientId: string, reason: string): void {
    const running = this.running.get(key);
    if (!running || running.fit.clientId !== clientId) return;
    running.cancelled = true;
    running.round?.cancel(clientId, reason);
  }
}
