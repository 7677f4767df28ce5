import type { Namespace } from "socket.io";
import type { FitOutcome } from "../client-proxy.js";
import type { RoundPhase, RoundRecord } from "../round-record.js";
import { type AccessRule, checkAccess, presentedToken } from "./access.js";
import type { DashboardClient, DashboardClientEvents, DashboardServerEvents } from "./dashboard-events.js";
import type { DashboardState } from "./dashboard-state.js";

export const DASHBOARD_NAMESPACE = "/dashboard";

/**
 * Client state changes are sent in batches at most this often: a round of thousands stays a few
 * messages. A batch keeps every change in order, so a brief state (uploading) is still seen.
 */
const CLIENT_BATCH_MS = 100;

/**
 * The read-only `/dashboard` Socket.IO namespace. It registers no event handler, so whatever a
 * browser sends is dropped; the access rule runs as middleware, before any event is sent.
 */
export class DashboardFeed {
  private readonly nsp: Namespace<DashboardClientEvents, DashboardServerEvents>;
  private pending: DashboardClient[] = [];
  private pendingRound = 0;
  private timer: NodeJS.Timeout | null = null;

  constructor(
    io: { of(name: string): object },
    private readonly state: DashboardState,
    access: AccessRule,
  ) {
    // Its own event maps: the coordinator's server is typed for the client protocol.
    this.nsp = io.of(DASHBOARD_NAMESPACE) as Namespace<DashboardClientEvents, DashboardServerEvents>;
    this.nsp.use((socket, next) => {
      const handshake = socket.handshake;
      const auth = handshake.auth as { token?: unknown } | undefined;
      const refusal = checkAccess(access, {
        remoteAddress: handshake.address,
        token: typeof auth?.token === "string" ? auth.token : presentedToken(handshake.headers),
      });
      if (!refusal) return next();
      const err = new Error(refusal.message) as Error & { data?: unknown };
      err.data = { code: refusal.code };
      next(err);
    });
    this.nsp.on("connection", (socket) => socket.emit("snapshot", this.state.snapshot()));
  }

  phase(round: number, phase: RoundPhase, detail?: string): void {
    const change = this.state.phase(round, phase, detail);
    this.queue(round, change.clients);
    this.flush();
    if (this.watched()) this.nsp.emit("phase", change.phase);
  }

  sampled(round: number, clientIds: readonly string[]): void {
    this.flush();
    this.queue(round, this.state.sampled(round, clientIds));
  }

  uploadStarted(clientId: string): void {
    const change = this.state.uploadStarted(clientId);
    if (change) this.queue(this.state.clientRound, [change]);
  }

  outcome(round: number, outcome: FitOutcome): void {
    const change = this.state.outcome(round, outcome);
    if (change) this.queue(round, [change]);
  }

  roundDone(record: RoundRecord): void {
    const change = this.state.roundDone(record);
    this.queue(record.round, change.clients);
    this.flush();
    if (this.watched()) this.nsp.emit("round", change.round);
  }

  close(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.nsp.disconnectSockets(true);
  }

  private watched(): boolean {
    return this.nsp.sockets.size > 0;
  }

  private queue(round: number, clients: readonly DashboardClient[]): void {
    if (clients.length === 0 || !this.watched()) return;
    if (round !== this.pendingRound) this.flush();
    this.pendingRound = round;
    for (const c of clients) this.pending.push(c);
    this.timer ??= setTimeout(() => this.flush(), CLIENT_BATCH_MS).unref();
  }

  private flush(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    if (this.pending.length === 0) return;
    const clients = this.pending;
    this.pending = [];
    if (this.watched()) this.nsp.emit("clients", { round: this.pendingRound, clients });
  }
}
