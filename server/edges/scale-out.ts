import type { Server } from "socket.io";
import type { EdgeMode, EdgeWelcome, InterServerEvents } from "../../common/edge-protocol.js";
import { ErrorCode, FedsimError } from "../../common/errors.js";
import { type AnyStrategy, isAsyncStrategy } from "../../common/strategy/async-strategy.js";
import type { ClientLimits } from "../client-limits.js";
import type { ClientDirectory } from "../client-proxy.js";
import type { RoundPlugin } from "../round-plugin.js";
import { AsyncEdgeDispatch } from "./edge-async-dispatch.js";
import { EdgeDirectory } from "./edge-directory.js";
import { EdgeDispatch } from "./edge-dispatch.js";
import { EdgeLinks } from "./edge-links.js";
import { EdgeAggregationPlugin } from "./edge-plugin.js";
import { EdgesWithPrivacy, edgeRequirements } from "./edge-privacy.js";
import { SealedInbox } from "./edge-sealed.js";
import { attachRedisAdapter } from "./redis.js";

/** A coordinator that runs rounds over edges (`fedsim coordinator --redis URL`). */
export interface ScaleOutOptions {
  /** redis://host:port of the Redis that joins the coordinator and its edges. */
  redisUrl: string;
  /** What edges must present on their link; without it only edges on loopback may link. */
  edgeToken?: string;
  /** How long to wait for Redis at start before failing with REDIS_UNREACHABLE (default 30 s). */
  redisWaitMs?: number;
  /** PEM of the CA that signed a rediss:// server's certificate (default: the system's CAs). */
  redisCa?: string;
}

export interface ScaleOut {
  directory: EdgeDirectory;
  /** The partial sums as the strategy's input; none under an asynchronous strategy. */
  plugin?: RoundPlugin;
  links: EdgeLinks;
  close(): Promise<void>;
}

/**
 * The coordinator's side of scale-out: joins its Socket.IO server to Redis, opens the `/edge`
 * namespace for the edges' direct links, and gives the round loop a directory of every edge's
 * clients and the plugin that turns the edges' partial sums into the strategy's input.
 */
export async function attachScaleOut(options: {
  // biome-ignore lint/suspicious/noExplicitAny: the main namespace's client events do not matter here
  io: Server<any, any, InterServerEvents, any>;
  local: ClientDirectory & { count(): number };
  strategy: AnyStrategy;
  welcome: EdgeWelcome;
  scaleOut: ScaleOutOptions;
  /** The run's privacy plugin (DP, envelopes, secure aggregation), if any: it says what it needs of the edges. */
  privacy?: RoundPlugin;
  /** The coordinator's bounds on each update, for the sealed updates it opens itself. */
  limits: ClientLimits;
  log: (line: string) => void;
}): Promise<ScaleOut> {
  const { io, strategy, log, privacy } = options;
  const needs = edgeRequirements(privacy);
  // An asynchronous strategy weighs each update by its staleness as it arrives: no sum is possible.
  const asynchronous = isAsyncStrategy(strategy);
  // Nor can an edge open a sealed update, let alone add it to others: each one goes to the coordinator.
  const mode: EdgeMode =
    asynchronous || strategy.requiresIndividualUpdates || needs.sealed ? "forward" : "sum";
  const weighting = asynchronous
    ? "examples"
    : needs.uniformWeights
      ? "uniform"
      : (strategy.updateWeighting ?? "examples");
  const inbox = needs.sealed ? new SealedInbox(options.limits) : null;
  let directory: EdgeDirectory | null = null;
  // Back from an outage: the edges' notices may have been lost, so ask for every roster again.
  const { redisUrl, redisWaitMs, redisCa } = options.scaleOut;
  const redis = await attachRedisAdapter(
    io,
    {
      url: redisUrl,
      ...(redisWaitMs !== undefined ? { waitMs: redisWaitMs } : {}),
      ...(redisCa !== undefined ? { ca: redisCa } : {}),
    },
    log,
    () => void directory?.refresh(),
  );
  // Another coordinator on the same Redis would wait for our answer to its requests.
  io.on("edgeRoster", (ack) => ack(null));
  io.on("edgeFit", (_plan, ack) => ack(null));
  const typedIo = io as unknown as Server<never, never, InterServerEvents, never>;
  let dispatch: EdgeDispatch | AsyncEdgeDispatch | null = null;
  const links = new EdgeLinks(io, {
    ...(options.scaleOut.edgeToken !== undefined ? { token: options.scaleOut.edgeToken } : {}),
    welcome: options.welcome,
    weightsFor: (round, key) => dispatch?.weightsFor(round, key) ?? null,
    onOutcome: (edgeId, outcome) => dispatch?.onOutcome(edgeId, outcome),
    onSealed: async (edgeId, sealed) => {
      if (!dispatch) throw new FedsimError(ErrorCode.STALE_ROUND, "no round is running");
      await dispatch.onSealed(edgeId, sealed);
    },
    onLinkClosed: (edgeId) => {
      dispatch?.onLinkClosed(edgeId);
      directory?.changed();
    },
    onLinked: () => void directory?.refresh(),
    log,
  });
  const settings = { mode, weighting, clipAtEdge: needs.clipAtEdge, inbox };
  const rounds = asynchronous ? null : new EdgeDispatch(typedIo, links, settings, log);
  dispatch =
    rounds ??
    new AsyncEdgeDispatch(links, options.limits, (clientId, edgeId) => directory?.forget(clientId, edgeId));
  directory = new EdgeDirectory(typedIo, options.local, links, dispatch, log);
  const why = needs.sealed ? "they are sealed to the coordinator" : `${strategy.name} needs them`;
  log(
    `edges: ${mode === "sum" ? "edges send one partial sum per round" : asynchronous ? `edges forward each update as it arrives (${strategy.name} is asynchronous)` : `edges forward each update (${why})`}`,
  );
  if (needs.clipAtEdge)
    log("edges: central DP: each edge clips each update to the round's clip norm before its sum");
  const edgePlugin = rounds ? new EdgeAggregationPlugin(rounds, links, weighting, log) : null;
  return {
    directory,
    ...(edgePlugin ? { plugin: new EdgesWithPrivacy(edgePlugin, privacy) } : {}),
    links,
    async close() {
      links.close();
      await redis.close();
    },
  };
}
