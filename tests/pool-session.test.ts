import { afterEach, describe, expect, it } from "vitest";
import type { ClientNode } from "../client/node.js";
import { generateIdentity } from "../common/crypto/identity.js";
import { virtualClientId } from "../common/pool-protocol.js";
import { FedAvg } from "../common/strategy/fedavg.js";
import { totalSize } from "../common/weights.js";
import { parseScenario } from "../scenarios/schema.js";
import { simulatedPoolIdentity } from "../scenarios/sim/pool.js";
import { VirtualPool } from "../scenarios/sim/virtual-pool.js";
import type { CoordinatorHandle } from "../server/coordinator.js";
import { eventually } from "./helpers/eventually.js";
import { smallMnist, startClients, startTestCoordinator } from "./helpers/federation.js";

const scenario = parseScenario({
  name: "mixed",
  seed: 3,
  dataset: { name: "mnist", limitTrain: 600 },
  partition: { kind: "iid" },
  model: "tiny-mlp",
  clients: 4,
});

let coordinator: CoordinatorHandle | undefined;
const closers: (() => void)[] = [];

afterEach(async () => {
  for (const close of closers.splice(0)) close();
  await coordinator?.close();
  coordinator = undefined;
});

function startPool(url: string, clientIndices: number[], identity = simulatedPoolIdentity(scenario.seed)) {
  const pool = new VirtualPool({ url, scenario, clientIndices, identity });
  closers.push(() => pool.close());
  return pool;
}

describe("pool sessions in a federation", () => {
  it("real client nodes and a pool's virtual clients train the same model together", async () => {
    const { parts, test } = await smallMnist(2, 150, 300);
    const logs: string[] = [];
    coordinator = await startTestCoordinator(
      test,
      {
        rounds: 2,
        minAvailableClients: 6,
        strategy: new FedAvg({
          fitConfig: { epochs: 2, batchSize: 10, learningRate: 0.1 },
          minFitClients: 6,
        }),
      },
      logs,
    );
    const nodes: ClientNode[] = startClients(coordinator.url, parts);
    closers.push(() => {
      for (const n of nodes) n.close();
    });
    const pool = startPool(coordinator.url, [0, 1, 2, 3]);
    await pool.start();
    const realIds = await Promise.all(nodes.map((n) => n.ready));

    const result = await coordinator.run();
    const modelBytes = totalSize(coordinator.loop.globalWeights.specs) * 4;
    for (const record of result.rounds) {
      expect(record.participants).toBe(6);
      expect(record.failures).toBe(0);
      const ids = record.clients.map((c) => c.clientId).sort();
      expect(ids).toEqual([...realIds, ...[0, 1, 2, 3].map((i) => pool.clientId(i))].sort());
      // The weights went once to each real node and once to the pool, not once per virtual client.
      expect(record.bytesSent).toBe(3 * modelBytes);
    }
    await eventually(() => expect(pool.fitsSent).toBe(8));
    expect(result.final.accuracy).toBeGreaterThan(result.initial.accuracy + 0.1);
  });

  it("gives the same ids to the same clients however many pools host them, and answers federated evaluation", async () => {
    const { test } = await smallMnist(1, 10, 100);
    coordinator = await startTestCoordinator(test, { rounds: 0, minAvailableClients: 4 });
    const identity = generateIdentity();
    const halves = [
      startPool(coordinator.url, [0, 2], identity),
      startPool(coordinator.url, [1, 3], identity),
    ];
    await Promise.all(halves.map((p) => p.start()));
    const split = coordinator.sockets
      .connected()
      .map((c) => c.id)
      .sort();
    expect(split).toEqual([0, 1, 2, 3].map((i) => virtualClientId(identity.publicKey, i)).sort());

    const weights = coordinator.loop.globalWeights;
    const reply = await coordinator.sockets
      .connected()[0]
      .evaluate?.(
        { round: 1, weights: { specs: weights.specs, values: weights.values.slice() }, frozen: null },
        30_000,
      );
    expect(reply?.numExamples).toBe(150);
    expect(reply?.accuracy).toBeGreaterThanOrEqual(0);

    for (const p of halves) p.close();
    await eventually(() => expect(coordinator?.sockets.count()).toBe(0));
    const whole = startPool(coordinator.url, [0, 1, 2, 3], identity);
    await whole.start();
    expect(
      coordinator.sockets
        .connected()
        .map((c) => c.id)
        .sort(),
    ).toEqual(split);
  });
});
