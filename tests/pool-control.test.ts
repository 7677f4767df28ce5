import { EventEmitter } from "node:events";
import { afterEach, describe, expect, it } from "vitest";
import { subset } from "../common/data/dataset.js";
import { loadEmbeddedMnist } from "../common/data/mnist.js";
import { ErrorCode } from "../common/errors.js";
import { parseScenario } from "../scenarios/schema.js";
import { NetworkConditions } from "../scenarios/sim/heterogeneity.js";
import {
  type ControlledPool,
  type PoolAck,
  poolAckSchema,
  poolCommandSchema,
  servePoolCommands,
  startControlledPool,
} from "../scenarios/sim/pool-control.js";
import type { CoordinatorHandle } from "../server/coordinator.js";
import { eventually } from "./helpers/eventually.js";
import { startTestCoordinator } from "./helpers/federation.js";

function scenario(extra: Record<string, unknown> = {}) {
  return parseScenario({
    name: "pool-control",
    seed: 4,
    dataset: { name: "mnist", limitTrain: 80, limitTest: 20 },
    model: "tiny-mlp",
    clients: 4,
    availability: { schedule: [{ clients: [1, 2], offline: { from: 2, to: 3 } }] },
    heterogeneity: { latencyMs: 10, networkScale: [{ fromRound: 3, scale: 2 }] },
    ...extra,
  });
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe("PoolController over real Socket.IO", () => {
  let coordinator: CoordinatorHandle | undefined;
  let pool: ControlledPool | undefined;
  afterEach(async () => {
    pool?.close();
    await coordinator?.close();
    pool = undefined;
  });

  async function start(clientIndices = [0, 1, 2, 3], network = new NetworkConditions()) {
    const test = subset(loadEmbeddedMnist().test, [0, 1, 2, 3, 4]);
    coordinator = await startTestCoordinator(test, { minAvailableClients: clientIndices.length });
    pool = await startControlledPool({ url: coordinator.url, scenario: scenario(), clientIndices, network });
    const ids = await Promise.all(pool.nodes.map((n) => n.ready));
    await eventually(() => expect(coordinator?.sockets.count()).toBe(clientIndices.length));
    return { pool, coordinator, ids, network };
  }

  it("beforeRound takes scheduled clients offline, keeps them so, and brings them back as themselves", async () => {
    const { pool, coordinator, ids, network } = await start();
    const connected = () => pool.nodes.map((n) => n.socket.connected);

    expect(await pool.controller.beforeRound(1)).toEqual({ offline: [], online: [] });
    expect(connected()).toEqual([true, true, true, true]);

    const round2 = await pool.controller.beforeRound(2);
    expect(round2.offline).toEqual([
      { index: 1, clientId: ids[1] },
      { index: 2, clientId: ids[2] },
    ]);
    expect(connected()).toEqual([true, false, false, true]);
    await eventually(() => expect(coordinator.sockets.count()).toBe(2));

    // Round 3: still offline, and no reconnection on their own (the backoff is 0.5 s).
    expect(await pool.controller.beforeRound(3)).toEqual({ offline: [], online: [] });
    expect(network.scale).toBe(2);
    await sleep(800);
    expect(connected()).toEqual([true, false, false, true]);
    expect(pool.nodes.map((n) => n.socket.active)).toEqual([true, false, false, true]);
    expect(coordinator.sockets.count()).toBe(2);

    const round4 = await pool.controller.beforeRound(4);
    expect(round4.online).toEqual([
      { index: 1, clientId: ids[1] },
      { index: 2, clientId: ids[2] },
    ]);
    // Acknowledged only once welcomed again: the coordinator already counts them.
    expect(connected()).toEqual([true, true, true, true]);
    expect(pool.nodes.map((n) => n.isOnline)).toEqual([true, true, true, true]);
    expect(coordinator.sockets.count()).toBe(4);
    expect(coordinator.sockets.knownClients()).toBe(4);
  });

  it("kill overrides availability until revive; indices of other pools are ignored", async () => {
    const { pool, ids } = await start([0, 3]);
    const killed = await pool.controller.kill([0, 1, 2]);
    expect(killed.offline).toEqual([{ index: 0, clientId: ids[0] }]);
    expect(pool.nodes[0].socket.connected).toBe(false);
    // An available round does not bring a killed client back.
    expect(await pool.controller.beforeRound(1)).toEqual({ offline: [], online: [] });
    expect(pool.nodes[0].isOffline).toBe(true);
    const revived = await pool.controller.revive([0]);
    expect(revived.online).toEqual([{ index: 0, clientId: ids[0] }]);
    expect(pool.nodes[0].isOnline).toBe(true);
    expect(() => pool.controller.kill([4])).toThrow(/client index 4 is outside \[0, 4\)/);
  });

  it("answers commands over an IPC channel with acks that carry the command's id", async () => {
    const { pool, network } = await start();
    const channel = new EventEmitter() as EventEmitter & { send: (ack: PoolAck) => void };
    const acks: PoolAck[] = [];
    channel.send = (ack) => acks.push(ack);
    const stop = servePoolCommands(pool.controller, channel);

    channel.emit("message", { type: "beforeRound", id: 1, round: 2 });
    await eventually(() => expect(acks).toHaveLength(1));
    expect(poolAckSchema.parse(acks[0])).toMatchObject({ id: 1, ok: true, onlineCount: 2 });

    channel.emit("message", { type: "setNetworkScale", id: 2, scale: 3 });
    channel.emit("message", { type: "revive", id: 3, clientIndices: [] });
    channel.emit("message", { type: "beforeRound", id: 4, round: 0 });
    channel.emit("message", { type: "explode", id: 5 });
    await eventually(() => expect(acks).toHaveLength(5));
    const byId = new Map(acks.map((a) => [a.id, a]));
    expect(byId.get(2)).toMatchObject({ ok: true, onlineCount: 2 });
    expect(network.scale).toBe(3);
    // Two offline clients stay offline: a revive with nothing to revive changes nothing.
    expect(byId.get(3)).toMatchObject({ ok: true, changed: { offline: [], online: [] } });
    for (const id of [4, 5]) expect(byId.get(id)).toMatchObject({ ok: false, code: ErrorCode.BAD_PAYLOAD });
    const bad = byId.get(4);
    expect(bad?.ok === false && bad.details.some((d) => d.startsWith("round: "))).toBe(true);

    // Once stopped nothing listens on the channel, so no later command can be answered.
    stop();
    expect(channel.listenerCount("message")).toBe(0);
  });
});

describe("pool command messages", () => {
  it("the schema accepts the four commands and refuses anything else", () => {
    for (const command of [
      { type: "beforeRound", id: 1, round: 3 },
      { type: "kill", id: 2, clientIndices: [0, 5] },
      { type: "revive", id: 3, clientIndices: [5] },
      { type: "setNetworkScale", id: 4, scale: 2 },
    ]) {
      expect(poolCommandSchema.safeParse(command).success).toBe(true);
    }
    for (const command of [
      { type: "beforeRound", id: 1 },
      { type: "kill", id: 2, clientIndices: [-1] },
      { type: "setNetworkScale", id: 4, scale: 0 },
      { type: "beforeRound", id: 1, round: 3, extra: true },
    ]) {
      expect(poolCommandSchema.safeParse(command).success).toBe(false);
    }
  });
});
