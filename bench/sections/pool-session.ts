import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { io } from "socket.io-client";
import { signChallenge } from "../../common/crypto/auth.js";
import { encodePublicKey, generateIdentity } from "../../common/crypto/identity.js";
import { encodeIndices } from "../../common/pool-protocol.js";
import { type Ack, PROTOCOL_VERSION, type Welcome } from "../../common/protocol.js";
import { FedAvg } from "../../common/strategy/fedavg.js";
import { initBackend } from "../../common/tf/backend.js";
import { loadScenarioData } from "../../scenarios/data.js";
import { parseScenario, type Scenario } from "../../scenarios/schema.js";
import { simulatedPoolIdentity, startClientPool } from "../../scenarios/sim/pool.js";
import { VirtualPool } from "../../scenarios/sim/virtual-pool.js";
import { createAuthGate } from "../../server/auth-gate.js";
import { startCoordinator } from "../../server/coordinator.js";
import type { RoundRecord } from "../../server/round-record.js";
import { CoordinatorSocketServer } from "../../server/socket-server.js";
import type { Table } from "../report/report-format.js";
import { median, sig } from "../timing.js";

/**
 * Pool sessions against one connection per client (docs/PROTOCOL.md §12), in the same run:
 * - what an idle virtual client costs, as heap after a full collection, in the coordinator's
 *   registry and in the pool host;
 * - a round of N clients with a small model both ways: wall time and payload bytes.
 */
export interface PoolSessionSection {
  idleClients: number;
  /** Heap bytes per idle virtual client in the coordinator's registry; the bound is 2048. */
  registryBytesPerClient: number;
  /** Heap bytes per idle virtual client in the pool host (data, model and socket excluded). */
  poolBytesPerClient: number;
  clients: number;
  model: string;
  timedRounds: number;
  session: RoundFigures;
  sockets: RoundFigures;
  /** session ÷ sockets for the median round time and the bytes sent; below 1 means the session costs less. */
  secondsRatio: number;
  bytesSentRatio: number;
  bytesReceivedRatio: number;
}

interface RoundFigures {
  roundSeconds: number;
  bytesSent: number;
  bytesReceived: number;
}

const SEED = 17;

function heapAfterGc(): number {
  setFlagsFromString("--expose-gc");
  const gc = runInNewContext("gc") as () => void;
  for (let i = 0; i < 3; i++) gc();
  return process.memoryUsage().heapUsed;
}

export async function runPoolSession(options: {
  quick: boolean;
  log: (line: string) => void;
}): Promise<PoolSessionSection> {
  const idle = options.quick ? 20_000 : 100_000;
  const clients = options.quick ? 20 : 50;
  const timedRounds = options.quick ? 2 : 4;
  await initBackend("auto");
  options.log(`poolSession: registry memory at ${idle} idle virtual clients…`);
  const registryBytesPerClient = await registryBytes(idle);
  options.log("poolSession: pool host memory…");
  const poolBytesPerClient = await poolBytes(idle);
  const scenario = parseScenario({
    name: "pool-session-bench",
    seed: SEED,
    dataset: { name: "mnist", limitTest: 200 },
    partition: { kind: "sample", size: 20 },
    model: "tiny-mlp",
    clients,
  });
  options.log(`poolSession: ${timedRounds} rounds of ${clients} clients over one pool session…`);
  const session = await rounds(scenario, timedRounds, "session");
  options.log(`poolSession: ${timedRounds} rounds of ${clients} clients, one connection each…`);
  const sockets = await rounds(scenario, timedRounds, "sockets");
  return {
    idleClients: idle,
    registryBytesPerClient,
    poolBytesPerClient,
    clients,
    model: scenario.model,
    timedRounds,
    session,
    sockets,
    secondsRatio: session.roundSeconds / sockets.roundSeconds,
    bytesSentRatio: session.bytesSent / sockets.bytesSent,
    bytesReceivedRatio: session.bytesReceived / sockets.bytesReceived,
  };
}

/** Opens a pool session by hand and joins `count` clients; heap growth per client. */
async function registryBytes(count: number): Promise<number> {
  const httpServer = createServer();
  const sockets = new CoordinatorSocketServer({
    httpServer,
    model: { topology: null, specs: [] },
    auth: createAuthGate({ kind: "open" }),
    maxPayloadBytes: 1_000_000,
    log: () => {},
  });
  await new Promise<void>((resolve) => httpServer.listen(0, "127.0.0.1", () => resolve()));
  const socket = io(`http://127.0.0.1:${(httpServer.address() as AddressInfo).port}`, {
    transports: ["websocket"],
    reconnection: false,
  });
  try {
    const identity = generateIdentity();
    const hello = (await socket.timeout(30_000).emitWithAck("hello", {
      protocolVersion: PROTOCOL_VERSION,
      publicKey: encodePublicKey(identity.publicKey),
      pool: true,
    })) as Ack<Welcome>;
    if (!hello.ok || !hello.challenge) throw new Error("pool session not challenged");
    await socket
      .timeout(30_000)
      .emitWithAck("prove", { signature: signChallenge(identity, new Uint8Array(hello.challenge)) });
    const indices = encodeIndices(Array.from({ length: count }, (_, i) => i));
    const before = heapAfterGc();
    const joined = (await socket.timeout(60_000).emitWithAck("poolJoin", { indices })) as Ack<{
      online: number;
    }>;
    if (!joined.ok || joined.online !== count) throw new Error("join refused");
    return Math.round((heapAfterGc() - before) / count);
  } finally {
    socket.disconnect();
    await sockets.close();
    await new Promise<void>((resolve) => httpServer.close(() => resolve()));
  }
}

/** A prepared pool of `count` clients against one of a single client: heap growth per client. */
async function poolBytes(count: number): Promise<number> {
  const scenario = parseScenario({
    name: "idle",
    dataset: { name: "mnist" },
    partition: { kind: "sample", size: 20 },
    clients: count,
    rounds: 1,
  });
  const hosted = async (n: number) => {
    const pool = new VirtualPool({
      url: "http://127.0.0.1:9",
      scenario,
      clientIndices: Array.from({ length: n }, (_, i) => i),
      identity: generateIdentity(),
    });
    await pool.prepare();
    const heap = heapAfterGc();
    pool.close();
    return heap;
  };
  const one = await hosted(1);
  const all = await hosted(count);
  return Math.round((all - one) / (count - 1));
}

/** One warm-up and `timed` rounds of every client; medians of the timed rounds. */
async function rounds(scenario: Scenario, timed: number, mode: "session" | "sockets"): Promise<RoundFigures> {
  const data = await loadScenarioData(scenario);
  const token = "pool-session-bench-token";
  const coordinator = await startCoordinator({
    host: "127.0.0.1",
    port: 0,
    rounds: timed + 1,
    model: scenario.model,
    testData: data.test,
    strategy: new FedAvg({
      fitConfig: { epochs: 1, batchSize: 20, learningRate: 0.1 },
      minFitClients: scenario.clients,
    }),
    deadlineMs: 120_000,
    minAvailableClients: scenario.clients,
    seed: SEED,
    backend: "auto",
    auth: { kind: "token", token },
  });
  const indices = Array.from({ length: scenario.clients }, (_, i) => i);
  const close: (() => void)[] = [];
  try {
    if (mode === "session") {
      const pool = new VirtualPool({
        url: coordinator.url,
        scenario,
        clientIndices: indices,
        identity: simulatedPoolIdentity(SEED),
        token,
      });
      close.push(() => pool.close());
      await pool.start();
    } else {
      const nodes = await startClientPool({ url: coordinator.url, scenario, clientIndices: indices, token });
      close.push(() => {
        for (const n of nodes) n.close();
      });
    }
    const records: RoundRecord[] = (await coordinator.run()).rounds.slice(1);
    return {
      roundSeconds: sig(median(records.map((r) => r.seconds))) ?? 0,
      bytesSent: median(records.map((r) => r.bytesSent)),
      bytesReceived: median(records.map((r) => r.bytesReceived)),
    };
  } finally {
    for (const c of close) c();
    await coordinator.close();
  }
}

export function poolSessionTable(s: PoolSessionSection): Table {
  const mb = (bytes: number) => Number((bytes / 1e6).toFixed(3));
  return {
    title: `Pool sessions (${s.clients} clients per round, ${s.model}; ${s.idleClients.toLocaleString("en-US")} idle virtual clients)`,
    headers: ["what", "pool session", "one connection per client", "ratio"],
    rows: [
      [
        "round wall time, median (s)",
        s.session.roundSeconds,
        s.sockets.roundSeconds,
        Number(s.secondsRatio.toFixed(3)),
      ],
      [
        "payload sent per round (MB)",
        mb(s.session.bytesSent),
        mb(s.sockets.bytesSent),
        Number(s.bytesSentRatio.toFixed(3)),
      ],
      [
        "payload received per round (MB)",
        mb(s.session.bytesReceived),
        mb(s.sockets.bytesReceived),
        Number(s.bytesReceivedRatio.toFixed(3)),
      ],
      ["bytes per idle virtual client, coordinator registry", s.registryBytesPerClient, null, null],
      ["bytes per idle virtual client, pool host", s.poolBytesPerClient, null, null],
    ],
    notes: [
      "A real coordinator and the clients in one process over Socket.IO on loopback; every client trains one SGD " +
        `step on 20 examples each round. Medians of ${s.timedRounds} rounds after one warm-up round, both layouts in the same run.`,
      "Payload bytes are the round records' (weights down, updates up): a pool session sends the weights once per round, " +
        "one connection per client once per client; updates travel per client either way.",
      "Idle bytes: heap growth after full collections when a pool session registers the clients (coordinator), and " +
        "between a prepared pool host of one client and one of all of them (data, model and socket excluded). The bound is 2048.",
    ],
  };
}
