import os from "node:os";
import { subset } from "../../common/data/dataset.js";
import { loadEmbeddedMnist } from "../../common/data/mnist.js";
import { FedAvg } from "../../common/strategy/fedavg.js";
import { type CoordinatorOptions, startCoordinator } from "../../server/coordinator.js";
import { forceGc } from "./probe.js";
import {
  type EdgeProcess,
  IngressCounter,
  rssOf,
  startClientHost,
  startEdgeProcess,
  startRedis,
} from "./scale-out-procs.js";
import { type IngressLine, ingressLine, projectIngress } from "./scale-out-projection.js";

/**
 * Scale-out over edges (docs/SCALE-OUT.md), with real processes: redis-server, each edge a
 * `fedsim coordinator --edge` from the compiled CLI, the coordinator in this process, and the
 * clients in a forked process of bare Socket.IO connections that complete the real hello and
 * admission (scale-out-worker.ts). Two measurements:
 * - the same number of connections held by 1 edge and by 3, with each edge process's resident
 *   memory per connection and the coordinator's;
 * - the coordinator's ingress over one FedAvg round on the CNN with every client answering its fit
 *   (a fixed valid update, no training), the clients connected straight to the coordinator
 *   against the same clients on 3 edges that sum their updates; measured at two sizes and
 *   projected to 1,000 clients (ingressSection says why).
 */
export interface ConnectionRun {
  edges: number;
  /** Connections opened, spread evenly over the edges. */
  clients: number;
  /** Connections the edges admitted (their hello was acknowledged). */
  admitted: number;
  /** Clients the coordinator's directory counted through the edges' rosters. */
  counted: number;
  /** Each edge process's resident set size after a full GC, before any client and with all of them (bytes). */
  edgeRss: { before: number; after: number }[];
  /** Mean over the edges of (RSS after − RSS before) ÷ the edge's connections. */
  edgeRssBytesPerConnection: number;
  /** This process (the coordinator, the harness and its tfjs) after a full GC, before and after. */
  coordinatorRss: { before: number; after: number };
  clientHostRss: number;
}

export interface IngressRun {
  /** 0: clients connected straight to the coordinator. */
  edges: number;
  clients: number;
  /** Updates the round aggregated. */
  participants: number;
  /** Every byte the coordinator's server read on its TCP connections over the round. */
  coordinatorIngressBytes: number;
  /** The round record's upload bytes (the clients' update payloads, wherever they arrived). */
  updateBytes: number;
  /** The round record's bytes over the edges' links (null without edges). */
  edgeLinkBytes: number | null;
}

export interface ScaleOutSection {
  connections: ConnectionRun[];
  ingress: {
    model: string;
    parameters: number;
    /** Real rounds: without edges and over `edges` edges, each at two client counts. */
    measured: IngressRun[];
    edges: number;
    /** The lines through each pair of rounds (scale-out-projection.ts). */
    withoutEdges: IngressLine;
    withEdges: IngressLine;
    /** Both lines at this many clients. */
    projectedClients: number;
    projectedWithoutEdgesBytes: number;
    projectedWithEdgesBytes: number;
  };
}

type Log = (line: string) => void;

export async function runScaleOut(options: { quick: boolean; log: Log }): Promise<ScaleOutSection> {
  const { quick, log } = options;
  const redis = await startRedis();
  try {
    const connections: ConnectionRun[] = [];
    for (const edges of [1, 3])
      connections.push(await measureConnections(redis.url, edges, quick ? 300 : 3000, log));
    return { connections, ingress: await ingressSection(redis.url, quick, log) };
  } finally {
    await redis.stop();
  }
}

/**
 * A real round of 1,000 CNN clients is out of reach in one process on this machine: every
 * client's 6.65 MB fit arrives at once, interleaved, so the client host alone would buffer
 * gigabytes before the first upload. Rounds of two smaller sizes measure the per-client and
 * fixed bytes exactly, and the line through them gives 1,000 clients.
 */
async function ingressSection(
  redisUrl: string,
  quick: boolean,
  log: Log,
): Promise<ScaleOutSection["ingress"]> {
  const sizes = quick ? [10, 20] : [50, 100];
  const edges = 3;
  const measured: IngressRun[] = [];
  let parameters = 0;
  for (const redis of [null, redisUrl]) {
    for (const clients of sizes) {
      const { parameters: p, ...run } = await measureIngress(redis, redis === null ? 0 : edges, clients, log);
      parameters = p;
      measured.push(run);
    }
  }
  const point = (r: IngressRun) => ({ clients: r.clients, bytes: r.coordinatorIngressBytes });
  const withoutEdges = ingressLine(point(measured[0]), point(measured[1]));
  const withEdges = ingressLine(point(measured[2]), point(measured[3]));
  const projectedClients = 1000;
  return {
    model: "mnist-cnn",
    parameters,
    measured,
    edges,
    withoutEdges,
    withEdges,
    projectedClients,
    projectedWithoutEdgesBytes: projectIngress(withoutEdges, projectedClients),
    projectedWithEdgesBytes: projectIngress(withEdges, projectedClients),
  };
}

function coordinatorOptions(model: string, clients: number, logs: string[]): CoordinatorOptions {
  const { test } = loadEmbeddedMnist();
  return {
    host: "127.0.0.1",
    port: 0,
    rounds: 1,
    model,
    testData: subset(
      test,
      Array.from({ length: 100 }, (_, i) => i),
    ),
    strategy: new FedAvg({
      fractionFit: 1,
      minFitClients: clients,
      fitConfig: { epochs: 1, batchSize: 10, learningRate: 0.05 },
    }),
    deadlineMs: 1_200_000,
    minAvailableClients: clients,
    waitForClientsMs: 1_200_000,
    seed: 1,
    backend: "auto",
    auth: { kind: "open" },
    log: (line) => {
      logs.push(line);
      if (logs.length > 200) logs.shift();
    },
  };
}

function rssAfterGc(): number {
  forceGc();
  return process.memoryUsage().rss;
}

async function startEdges(redisUrl: string, coordinatorUrl: string, count: number) {
  const edges: EdgeProcess[] = [];
  for (let e = 0; e < count; e++) edges.push(await startEdgeProcess(redisUrl, coordinatorUrl, `edge-${e}`));
  return edges;
}

async function measureConnections(redisUrl: string, edgeCount: number, clients: number, log: Log) {
  const logs: string[] = [];
  const coordinator = await startCoordinator({
    ...coordinatorOptions("tiny-mlp", clients, logs),
    scaleOut: { redisUrl },
  });
  const stops: (() => Promise<void>)[] = [];
  const started = performance.now();
  try {
    const edges = await startEdges(redisUrl, coordinator.url, edgeCount);
    stops.push(...edges.map((e) => e.stop));
    const directory = coordinator.scaleOut?.directory;
    if (!directory) throw new Error("the coordinator runs without edges");
    const edgeBefore = await Promise.all(edges.map((e) => e.rssAfterGc()));
    const coordinatorBefore = rssAfterGc();
    const host = await startClientHost({
      urls: edges.map((e) => e.url),
      count: clients,
      concurrency: 200,
      fitValue: null,
      numExamples: 1,
      uploads: 1,
    });
    stops.unshift(host.stop);
    if (host.ready.failed > 0)
      log(`scaleOut: ${host.ready.failed} connections failed: ${host.ready.errorSamples.join("; ")}`);
    await directory.waitForClients(host.ready.admitted, 120_000);
    const counted = directory.connected().length;
    const edgeAfter = await Promise.all(edges.map((e) => e.rssAfterGc()));
    const edgeRss = edges.map((_, k) => ({ before: edgeBefore[k], after: edgeAfter[k] }));
    const perEdge = edgeRss.map((r, k) => (r.after - r.before) / connectionsOf(k, edgeCount, clients));
    const run: ConnectionRun = {
      edges: edgeCount,
      clients,
      admitted: host.ready.admitted,
      counted,
      edgeRss,
      edgeRssBytesPerConnection: Math.round(perEdge.reduce((s, x) => s + x, 0) / perEdge.length),
      coordinatorRss: { before: coordinatorBefore, after: rssAfterGc() },
      clientHostRss: rssOf(host.pid),
    };
    log(
      `scaleOut: ${edgeCount} edge(s): ${host.ready.admitted} admitted, ${counted} counted by the coordinator, ` +
        `${run.edgeRssBytesPerConnection} B of edge RSS per connection (${seconds(started)})`,
    );
    return run;
  } catch (err) {
    log(`scaleOut: coordinator log tail:\n${logs.slice(-20).join("\n")}`);
    throw err;
  } finally {
    for (const stop of stops) await stop();
    await coordinator.close();
  }
}

/** Elapsed time for progress lines, with the load that makes it mean little. */
function seconds(since: number): string {
  return `${((performance.now() - since) / 1000).toFixed(0)} s since start, load average ${os.loadavg()[0].toFixed(1)}`;
}

/** How many of `clients` connect to edge k (client i goes to edge i mod edges). */
function connectionsOf(k: number, edges: number, clients: number): number {
  return Math.floor(clients / edges) + (k < clients % edges ? 1 : 0);
}

async function measureIngress(redisUrl: string | null, edgeCount: number, clients: number, log: Log) {
  const logs: string[] = [];
  const coordinator = await startCoordinator({
    ...coordinatorOptions("mnist-cnn", clients, logs),
    ...(redisUrl !== null ? { scaleOut: { redisUrl } } : {}),
  });
  const counter = new IngressCounter(coordinator.sockets.io.httpServer);
  const started = performance.now();
  const stops: (() => Promise<void>)[] = [];
  try {
    const edges = redisUrl !== null ? await startEdges(redisUrl, coordinator.url, edgeCount) : [];
    stops.push(...edges.map((e) => e.stop));
    const host = await startClientHost({
      urls: edges.length > 0 ? edges.map((e) => e.url) : [coordinator.url],
      count: clients,
      concurrency: 100,
      fitValue: 1e-4,
      numExamples: 10,
      uploads: 4,
    });
    stops.unshift(host.stop);
    if (host.ready.failed > 0)
      throw new Error(`${host.ready.failed} clients failed: ${host.ready.errorSamples.join("; ")}`);
    log(`scaleOut: ${clients} clients admitted (${seconds(started)}); running the round`);
    const before = counter.total();
    const result = await coordinator.run();
    const ingress = counter.total() - before;
    const record = result.rounds[0];
    const report = await host.report();
    if (report.failed > 0 || record.participants < clients) {
      log(
        `scaleOut: ${report.answered} fits answered, ${report.failed} failed (${report.errorSamples.join("; ")}); ` +
          `failures ${JSON.stringify(record.failuresByKind)}; coordinator log tail:\n${logs.slice(-15).join("\n")}`,
      );
    }
    // A round that lost clients would bend the line the projection is drawn through.
    if (record.participants !== clients) {
      throw new Error(`the ${clients}-client round aggregated ${record.participants} updates`);
    }
    const run: IngressRun & { parameters: number } = {
      edges: edgeCount,
      clients,
      participants: record.participants,
      coordinatorIngressBytes: ingress,
      updateBytes: record.bytesReceived,
      edgeLinkBytes: record.edgeIngressBytes ?? null,
      parameters: coordinator.loop.globalWeights.values.length,
    };
    log(
      `scaleOut: CNN round, ${clients} clients, ${edgeCount === 0 ? "no edges" : `${edgeCount} edges`}: ` +
        `${record.participants} updates aggregated, coordinator read ${ingress} B (${seconds(started)})`,
    );
    return run;
  } catch (err) {
    log(`scaleOut: coordinator log tail:\n${logs.slice(-20).join("\n")}`);
    throw err;
  } finally {
    for (const stop of stops) await stop();
    await coordinator.close();
  }
}
