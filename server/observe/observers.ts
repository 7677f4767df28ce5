import type { IncomingMessage, ServerResponse } from "node:http";
import type { ClientDirectory, FitOutcome } from "../client-proxy.js";
import type { EdgeDirectory } from "../edges/edge-directory.js";
import type { RoundPhase, RoundRecord } from "../round-record.js";
import type { CoordinatorSocketServer } from "../socket-server.js";
import { type AccessRule, checkAccessRule } from "./access.js";
import type { DashboardConfigValue } from "./dashboard-events.js";
import { DashboardFeed } from "./dashboard-namespace.js";
import { DashboardState } from "./dashboard-state.js";
import { createHttpRoutes, DASHBOARD_PATH, METRICS_PATH } from "./http-routes.js";
import { CoordinatorMetrics } from "./metrics.js";

export interface DashboardOptions {
  /** The run's configuration as the page lists it (model, strategy, E, B, lr, privacy, seed, …). */
  config?: Record<string, DashboardConfigValue>;
  /** The ε budget, drawn against the ε spent. */
  targetEpsilon?: number;
}

export interface ObserversOptions {
  /** Serve the live dashboard; /metrics is always served. */
  dashboard?: DashboardOptions;
  /** Opens the dashboard and /metrics to any peer that presents it (and only to those). */
  token?: string;
  totalRounds: number;
  /** Rounds a resumed run already has. */
  history?: readonly RoundRecord[];
  log: (line: string) => void;
}

/**
 * What the coordinator shows about itself while it runs: /metrics always, the dashboard page and
 * its namespace when asked. The coordinator calls these hooks; none of them sees a weight.
 */
export class Observers {
  readonly metrics: CoordinatorMetrics;
  readonly handleRequest: (req: IncomingMessage, res: ServerResponse) => void;
  private readonly access: AccessRule;
  private readonly state: DashboardState | null;
  private feed: DashboardFeed | null = null;
  /** Where the clients are counted: the socket server, or over edges every edge's roster too. */
  private directory: ClientDirectory | null = null;

  constructor(options: ObserversOptions) {
    this.access = options.token !== undefined ? { token: options.token } : {};
    checkAccessRule(this.access);
    this.metrics = new CoordinatorMetrics(() => this.directory?.connected().length ?? 0);
    for (const record of options.history ?? []) this.metrics.roundDone(record);
    const dashboard = options.dashboard;
    this.state = dashboard
      ? new DashboardState(dashboard.config ?? {}, options.totalRounds, dashboard.targetEpsilon)
      : null;
    this.state?.addHistory(options.history ?? []);
    this.handleRequest = createHttpRoutes({
      access: this.access,
      metrics: this.metrics,
      dashboard: dashboard !== undefined,
      log: options.log,
    });
  }

  /** Once the Socket.IO server exists: the dashboard namespace, and the connected-clients gauge. */
  attach(sockets: CoordinatorSocketServer): void {
    this.directory = sockets;
    if (this.state) this.feed = new DashboardFeed(sockets.io, this.state, this.access);
  }

  /** Over edges: clients are counted on every edge, and /metrics gains the edges' gauges. */
  attachEdges(directory: EdgeDirectory): void {
    this.directory = directory;
    this.metrics.watchEdges(() => directory.clientsPerEdge());
  }

  /** The page's address (with the token, when one is set), given the coordinator's base URL. */
  dashboardUrl(baseUrl: string): string | undefined {
    if (!this.state) return undefined;
    const query = this.access.token !== undefined ? `?token=${encodeURIComponent(this.access.token)}` : "";
    return `${baseUrl}${DASHBOARD_PATH}${query}`;
  }

  metricsUrl(baseUrl: string): string {
    return `${baseUrl}${METRICS_PATH}`;
  }

  /** Only needed with a dashboard: tells the socket server to report replies as they begin. */
  get onUploadStart(): ((clientId: string) => void) | undefined {
    return this.state ? (clientId) => this.feed?.uploadStarted(clientId) : undefined;
  }

  phase(round: number, phase: RoundPhase, detail?: string): void {
    this.feed?.phase(round, phase, detail);
  }

  sampled(round: number, clientIds: readonly string[]): void {
    this.feed?.sampled(round, clientIds);
  }

  outcome(round: number, outcome: FitOutcome): void {
    this.feed?.outcome(round, outcome);
  }

  roundDone(record: RoundRecord): void {
    this.metrics.roundDone(record);
    this.feed?.roundDone(record);
  }

  close(): void {
    this.feed?.close();
  }
}
