import type { Server } from "socket.io";
import { edgeRosterSchema, type InterServerEvents } from "../../common/edge-protocol.js";
import { ErrorCode, FedsimError } from "../../common/errors.js";
import { safeParseUntrusted } from "../../common/protocol.js";
import type {
  ClientDirectory,
  ClientProxy,
  FitOutcome,
  FitRequest,
  MaskedInputHolder,
  SecAggStage,
} from "../client-proxy.js";
import { askEdges } from "./ask-edges.js";
import type { EdgeDispatch } from "./edge-dispatch.js";
import type { EdgeLinks } from "./edge-links.js";

/** What sends a remote client's fits to its edge: a round's plan, or one asynchronous fit at a time. */
export type RemoteFits = Pick<EdgeDispatch, "fit" | "cancel"> &
  Partial<Pick<EdgeDispatch, "maskedHolder" | "secagg">>;

/**
 * A client held by an edge, as the loops see it: its fits and SecAgg stages go through the edge
 * dispatch, and under secure aggregation its masked input stays at the edge.
 */
export class RemoteClientProxy implements ClientProxy {
  readonly maskedHolder?: MaskedInputHolder;

  constructor(
    readonly id: string,
    readonly edgeId: string,
    private readonly dispatch: RemoteFits,
  ) {
    const holder = dispatch.maskedHolder?.(edgeId);
    if (holder) this.maskedHolder = holder;
  }

  fit(request: FitRequest, deadlineMs: number): Promise<FitOutcome> {
    return this.dispatch.fit(this.id, this.edgeId, request, deadlineMs);
  }

  cancel(round: number, reason: string): void {
    this.dispatch.cancel(this.id, round, reason);
  }

  secagg(stage: SecAggStage, payload: unknown, timeoutMs: number): Promise<unknown> {
    if (!this.dispatch.secagg) {
      const refusal = new FedsimError(
        ErrorCode.INCOMPATIBLE_OPTIONS,
        "secure aggregation over edges needs rounds",
      );
      return Promise.reject(refusal);
    }
    return this.dispatch.secagg(this.id, this.edgeId, stage, payload, timeoutMs);
  }
}

/**
 * Every client of the federation, whatever edge holds it: the edges' rosters, asked for through
 * the Redis adapter (serverSideEmit with acks) before each round and whenever an edge says its
 * clients changed, plus the clients connected to the coordinator itself. Only edges with a live
 * link count: an edge that cannot report results holds no usable client.
 */
export class EdgeDirectory implements ClientDirectory {
  private readonly rosters = new Map<string, RemoteClientProxy[]>();
  private readonly waiters = new Set<() => void>();
  private refreshing: Promise<void> | null = null;
  private refreshAgain = false;

  constructor(
    private readonly io: Server<never, never, InterServerEvents, never>,
    private readonly local: ClientDirectory,
    private readonly links: EdgeLinks,
    private readonly dispatch: RemoteFits,
    private readonly log: (line: string) => void,
  ) {
    io.on("edgeRosterChanged", () => void this.refresh());
  }

  connected(): ClientProxy[] {
    const out = [...this.local.connected()];
    const seen = new Set(out.map((c) => c.id));
    // Sorted by edge id, so the sample does not depend on which edge answered first.
    for (const edgeId of [...this.rosters.keys()].sort()) {
      if (!this.links.has(edgeId)) continue;
      for (const proxy of this.rosters.get(edgeId) ?? []) {
        if (seen.has(proxy.id)) continue;
        seen.add(proxy.id);
        out.push(proxy);
      }
    }
    return out.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  }

  /** Each linked edge's roster size, by edge id, as of the last roster answers (for /metrics). */
  clientsPerEdge(): Map<string, number> {
    const out = new Map<string, number>();
    for (const edgeId of this.links.ids()) out.set(edgeId, this.rosters.get(edgeId)?.length ?? 0);
    return out;
  }

  async waitForClients(count: number, timeoutMs: number): Promise<boolean> {
    await this.refresh();
    if (this.connected().length >= count) return true;
    return new Promise((resolve) => {
      const check = () => {
        if (this.connected().length < count) return;
        done(true);
      };
      const done = (ok: boolean) => {
        clearTimeout(timer);
        this.waiters.delete(check);
        resolve(ok);
      };
      const timer = setTimeout(() => done(this.connected().length >= count), timeoutMs);
      this.waiters.add(check);
    });
  }

  /**
   * An edge said it does not hold this client (it left before the edge's notice came): it is
   * not sampled again until a roster has it, and the rosters are asked for at once.
   */
  forget(clientId: string, edgeId: string): void {
    const roster = this.rosters.get(edgeId);
    if (roster)
      this.rosters.set(
        edgeId,
        roster.filter((p) => p.id !== clientId),
      );
    void this.refresh();
  }

  /** Something changed (a link, a local client): waiters look again. */
  changed(): void {
    for (const w of [...this.waiters]) w();
  }

  /** Asks every edge for its roster; one request at a time, and one more if asked meanwhile. */
  refresh(): Promise<void> {
    if (this.refreshing) {
      this.refreshAgain = true;
      return this.refreshing;
    }
    this.refreshing = this.askRosters().finally(() => {
      this.refreshing = null;
      if (this.refreshAgain) {
        this.refreshAgain = false;
        void this.refresh();
      }
    });
    return this.refreshing;
  }

  private async askRosters(): Promise<void> {
    const { replies, error } = await askEdges((ack) => this.io.serverSideEmit("edgeRoster", ack));
    if (error) this.log(`edges: roster incomplete: ${error}`);
    const fresh = new Map<string, RemoteClientProxy[]>();
    for (const raw of replies) {
      const parsed = safeParseUntrusted(edgeRosterSchema, raw);
      if (!parsed.success) continue;
      const { edgeId, clientIds } = parsed.data;
      const known = new Map((this.rosters.get(edgeId) ?? []).map((p) => [p.id, p]));
      fresh.set(
        edgeId,
        clientIds.map((id) => known.get(id) ?? new RemoteClientProxy(id, edgeId, this.dispatch)),
      );
    }
    // An edge that did not answer but whose link is up keeps its last roster: Redis lost the
    // request or the answer (an outage, or on a cluster a subscriber moving off a failed node,
    // which the adapter does not count), not the edge. Its link decides when it is gone.
    for (const [edgeId, roster] of this.rosters) {
      if (!fresh.has(edgeId) && (error !== undefined || this.links.has(edgeId))) fresh.set(edgeId, roster);
    }
    this.rosters.clear();
    for (const [edgeId, roster] of fresh) this.rosters.set(edgeId, roster);
    this.changed();
  }
}
