import { randomBytes } from "node:crypto";
import type { AddressInfo } from "node:net";
import { io as connect } from "socket.io-client";
import type { AuthMode } from "../../common/crypto/auth.js";
import { isLoopbackHost } from "../../common/crypto/tls.js";
import {
  EDGE_NAMESPACE,
  type EdgeFitPlan,
  type EdgeWelcome,
  edgeCancelSchema,
  edgeFitPlanSchema,
  edgeSumRequestSchema,
} from "../../common/edge-protocol.js";
import { describeError, ErrorCode, FedsimError } from "../../common/errors.js";
import { lenientParser } from "../../common/net/lenient-parser.js";
import { safeParseUntrusted } from "../../common/protocol.js";
import { float32BytesView } from "../../common/weights.js";
import { createAuthGate } from "../auth-gate.js";
import type { ClientLimits } from "../client-limits.js";
import type { ClientProxy, FitRequest } from "../client-proxy.js";
import { listen } from "../listen.js";
import { CoordinatorSocketServer } from "../socket-server.js";
import { createServerTransport } from "../transport.js";
import { EdgeAsyncFits } from "./edge-async-fits.js";
import { EdgeRound } from "./edge-round.js";
import { answerSecAgg } from "./edge-secagg.js";
import {
  fetchRequest,
  fetchWeights,
  firstWelcome,
  hello,
  type Link,
  placeholderRequest,
  withEnvelope,
} from "./edge-uplink.js";
import { attachRedisAdapter } from "./redis.js";

export interface EdgeOptions {
  host: string;
  port: number;
  /** redis://host:port, the same Redis as the coordinator's. */
  redisUrl: string;
  /** The coordinator's address: the edge opens its direct link to the `/edge` namespace there. */
  coordinatorUrl: string;
  /** Unique among the edges (default: random). A restarted edge may take its old id back. */
  edgeId?: string;
  /** The coordinator's `--edge-token`, when it has one. */
  edgeToken?: string;
  /** How long to wait for Redis at start before failing with REDIS_UNREACHABLE (default 30 s). */
  redisWaitMs?: number;
  /** PEM of the CA that signed a rediss:// server's certificate (default: the system's CAs). */
  redisCa?: string;
  /** Serve clients over HTTPS/WSS with this certificate and key, as a coordinator does. */
  tls?: { certPath: string; keyPath: string };
  /** PEM of the CA to trust for the coordinator's certificate on the link (default: the system's). */
  ca?: string;
  /** How this edge admits clients: the same modes as a coordinator (allowlist, tokens, open). */
  auth: AuthMode;
  limits?: Partial<ClientLimits>;
  helloTimeoutMs?: number;
  maxRememberedClients?: number;
  log?: (line: string) => void;
}

export interface EdgeHandle {
  edgeId: string;
  url: string;
  port: number;
  sockets: CoordinatorSocketServer;
  close(): Promise<void>;
}

/**
 * An edge (`fedsim coordinator --edge`): a Socket.IO server that admits and holds clients exactly
 * as a coordinator does, joined to the coordinator and the other edges through the Redis adapter,
 * with a direct link to the coordinator for weights, outcomes and partial sums. It runs no rounds
 * of its own: the coordinator's plans (through Redis) say which of its clients train.
 */
export async function startEdge(options: EdgeOptions): Promise<EdgeHandle> {
  const log = options.log ?? (() => {});
  const edgeId = options.edgeId ?? `edge-${randomBytes(4).toString("hex")}`;
  // Certificates first: a wrong path is an error before anything connects or listens.
  const httpServer = await createServerTransport(options.tls);
  const link: Link = connect(`${options.coordinatorUrl.replace(/\/$/, "")}${EDGE_NAMESPACE}`, {
    transports: ["websocket"],
    ...(options.ca !== undefined ? { ca: options.ca } : {}),
    parser: lenientParser,
    reconnectionDelay: 500,
    reconnectionDelayMax: 2000,
  });
  let welcome: EdgeWelcome;
  try {
    welcome = await firstWelcome(link, edgeId, options.edgeToken, options.coordinatorUrl, log);
  } catch (err) {
    link.disconnect();
    throw err;
  }
  let announce: NodeJS.Immediate | null = null;
  const sockets = new CoordinatorSocketServer({
    httpServer,
    model: welcome.model,
    auth: createAuthGate(options.auth),
    maxPayloadBytes: welcome.maxPayloadBytes,
    ...(options.maxRememberedClients !== undefined
      ? { maxRememberedClients: options.maxRememberedClients }
      : {}),
    ...(options.limits ? { limits: options.limits } : {}),
    ...(options.helloTimeoutMs !== undefined ? { helloTimeoutMs: options.helloTimeoutMs } : {}),
    // One notice per turn of the event loop, however many clients came or went in it.
    onClientsChanged: () => {
      if (announce !== null) return;
      announce = setImmediate(() => {
        announce = null;
        sockets.io.serverSideEmit("edgeRosterChanged", edgeId);
      });
    },
    log,
  });
  // Back from a Redis outage: the coordinator may have missed this edge's roster.
  let redis: Awaited<ReturnType<typeof attachRedisAdapter>>;
  try {
    redis = await attachRedisAdapter(
      sockets.io,
      {
        url: options.redisUrl,
        ...(options.redisWaitMs !== undefined ? { waitMs: options.redisWaitMs } : {}),
        ...(options.redisCa !== undefined ? { ca: options.redisCa } : {}),
      },
      log,
      () => sockets.io.serverSideEmit("edgeRosterChanged", edgeId),
    );
  } catch (err) {
    link.disconnect();
    await sockets.close();
    throw err;
  }
  let current: EdgeRound | null = null;
  // Asynchronous strategies: single fits over the link instead of round plans through Redis.
  const asyncFits = new EdgeAsyncFits(link, {
    edgeId,
    client: (clientId) => sockets.connectedClient(clientId),
    fetchWeights: (version, key) => fetchWeights(link, version, key),
    log,
  });

  sockets.io.on("edgeRoster", (ack) => ack({ edgeId, clientIds: sockets.connected().map((c) => c.id) }));
  /** The last plan this edge answered, so that the copy the coordinator may resend on the link starts nothing twice. */
  let answered: { key: string; started: string[] } | null = null;
  const onPlan = (raw: unknown, ack: unknown) => {
    if (typeof ack !== "function") return;
    const parsed = safeParseUntrusted(edgeFitPlanSchema, raw);
    if (!parsed.success) return ack(null);
    const plan = parsed.data;
    if (answered?.key === plan.key) return ack({ edgeId, started: answered.started });
    const assigned = plan.assignments[edgeId] ?? [];
    const held = new Map(sockets.connected().map((c) => [c.id, c]));
    const clients = link.connected ? assigned.map((id) => held.get(id)).filter((c) => c !== undefined) : [];
    const started = clients.map((c) => c.id);
    answered = { key: plan.key, started };
    ack({ edgeId, started });
    if (clients.length === 0) return;
    current?.abandon("a newer round began");
    const round = new EdgeRound(plan, withEnvelope(placeholderRequest(plan), plan, link), (outcome) =>
      link.emit("edgeOutcome", outcome),
    );
    current = round;
    void startRound(round, plan, clients);
  };
  sockets.io.on("edgeFit", onPlan);
  link.on("edgeFit", onPlan);

  /** Fetches the round's weights once over the link, then sends every assigned client its fit. */
  const startRound = async (round: EdgeRound, plan: EdgeFitPlan, clients: ClientProxy[]) => {
    let request: FitRequest;
    try {
      request = await fetchRequest(link, plan);
    } catch (err) {
      log(`round ${plan.round}: edge ${edgeId} could not fetch the weights: ${describeError(err)}`);
      for (const c of clients) {
        link.emit("edgeOutcome", {
          ok: false,
          round: plan.round,
          key: plan.key,
          clientId: c.id,
          reason: "error",
          code: ErrorCode.EDGE_LOST,
          message: `edge ${edgeId} could not fetch the round's weights: ${describeError(err)}`,
        });
      }
      return;
    }
    if (current !== round) return;
    const started = new EdgeRound(plan, withEnvelope(request, plan, link), (outcome) =>
      link.emit("edgeOutcome", outcome),
    );
    current = started;
    started.start(clients);
  };

  link.on("edgeSum", (raw, ack) => {
    const reply = typeof ack === "function" ? ack : () => {};
    const parsed = safeParseUntrusted(edgeSumRequestSchema, raw);
    if (!parsed.success)
      return reply({ ok: false, code: ErrorCode.BAD_PAYLOAD, message: "malformed edgeSum" });
    const round = current;
    if (!round || round.key !== parsed.data.key) {
      return reply({
        ok: false,
        code: ErrorCode.STALE_ROUND,
        message: `round ${parsed.data.round} is not this edge's current round`,
      });
    }
    try {
      const part = round.sum(parsed.data.clientIds);
      reply({
        ok: true,
        sum: float32BytesView(part.sum),
        totalWeight: part.totalWeight,
        count: part.count,
        ...(part.clipped !== undefined ? { clipped: part.clipped } : {}),
      });
    } catch (err) {
      reply({
        ok: false,
        code: err instanceof FedsimError ? err.code : ErrorCode.INTERNAL,
        message: describeError(err),
      });
    }
  });
  answerSecAgg(link, {
    client: (clientId) => sockets.connectedClient(clientId),
    round: () => current,
    log: (line) => log(`edge ${edgeId}: ${line}`),
  });
  link.on("edgeCancel", (raw) => {
    const parsed = safeParseUntrusted(edgeCancelSchema, raw);
    if (parsed.success && current?.key === parsed.data.key)
      current.cancel(parsed.data.clientId, parsed.data.reason);
  });
  // After a reconnect the coordinator needs the hello again before it takes outcomes from the link.
  link.io.on("reconnect", () => {
    void hello(link, edgeId, options.edgeToken).then(
      () => log(`edge ${edgeId}: link to the coordinator restored`),
      (err) => log(`edge ${edgeId}: link hello refused: ${describeError(err)}`),
    );
  });
  link.on("disconnect", (reason) => log(`edge ${edgeId}: link to the coordinator lost (${reason})`));

  await listen(httpServer, options.port, options.host);
  const port = (httpServer.address() as AddressInfo).port;
  const url = `${options.tls ? "https" : "http"}://${options.host.includes(":") ? `[${options.host}]` : options.host}:${port}`;
  log(`edge ${edgeId}: listening on ${url}, linked to ${options.coordinatorUrl}`);
  if (!options.tls && !isLoopbackHost(options.host)) {
    log(
      `WARNING: edge ${edgeId} listening on ${options.host} without TLS; updates cross the network in the clear. Use --tls-cert/--tls-key.`,
    );
  }
  return {
    edgeId,
    url,
    port,
    sockets,
    async close() {
      current?.abandon("edge shutting down");
      asyncFits.abandon("edge shutting down");
      link.disconnect();
      await sockets.close("edge shutting down", { shutdown: false });
      await redis.close();
      await new Promise<void>((resolve) => httpServer.close(() => resolve()));
    },
  };
}
