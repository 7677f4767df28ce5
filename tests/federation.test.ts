import * as tf from "@tensorflow/tfjs";
import { afterEach, describe, expect, it } from "vitest";
import type { ClientNode } from "../client/node.js";
import { ModelWorkbench } from "../client/workbench.js";
import type { CoordinatorHandle } from "../server/coordinator.js";
import { eventually } from "./helpers/eventually.js";
import { smallMnist, startClients, startTestCoordinator } from "./helpers/federation.js";

describe("a federation over real Socket.IO", () => {
  let coordinator: CoordinatorHandle | undefined;
  let clients: ClientNode[] = [];
  afterEach(async () => {
    for (const c of clients) c.close();
    await coordinator?.close();
    clients = [];
  });

  it("trains with FedAvg: accuracy after 3 rounds beats round 0, tensors stay flat", async () => {
    const { parts, test } = await smallMnist(3, 300);
    const logs: string[] = [];
    coordinator = await startTestCoordinator(test, {}, logs);
    const workbench = new ModelWorkbench();
    clients = startClients(coordinator.url, parts, () => ({ workbench }), logs);
    await Promise.all(clients.map((c) => c.ready));
    const tensorsPerRound: number[] = [];
    const result = await coordinator.run();
    expect(result.rounds).toHaveLength(3);
    for (const r of result.rounds) {
      expect(r.participants).toBe(3);
      expect(r.failures).toBe(0);
      tensorsPerRound.push(tf.memory().numTensors);
    }
    expect(result.final.accuracy).toBeGreaterThan(result.initial.accuracy + 0.2);
    expect(result.rounds[2].accuracy).toBeGreaterThan(0.6);
    // Coordinator and clients share this process: no tensor may accumulate across rounds.
    expect(new Set(tensorsPerRound.slice(1)).size).toBe(1);
    // The last ack reaches the clients just after the coordinator finishes.
    await eventually(() => expect(clients.map((c) => c.roundsTrained)).toEqual([3, 3, 3]));
    // Each acknowledged upload's array went back to the workbench and later fits trained into it: at
    // most one fresh array per client (fewer when an ack lands before the next fit of the same round).
    const { allocated, reused, bytes } = workbench.spareDeltaStats;
    expect(allocated + reused).toBe(9);
    expect(allocated).toBeLessThanOrEqual(3);
    expect(bytes).toBe(allocated * coordinator.loop.globalWeights.values.byteLength);
  });
});
