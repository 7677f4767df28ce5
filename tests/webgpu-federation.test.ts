/**
 * A two-client federation over real Socket.IO with the coordinator and both clients on the webgpu
 * backend (one process, so one backend): the rounds complete, the model learns, and tensors stay flat.
 * Without an adapter it does not run; "the webgpu backend is available" fails instead when CI or
 * FEDSIM_REQUIRE_WEBGPU=1 is set.
 */
import * as tf from "@tensorflow/tfjs";
import { afterEach, describe, expect, it } from "vitest";
import type { ClientNode } from "../client/node.js";
import { FedAvg } from "../common/strategy/fedavg.js";
import type { CoordinatorHandle } from "../server/coordinator.js";
import { eventually } from "./helpers/eventually.js";
import { smallMnist, startClients, startTestCoordinator } from "./helpers/federation.js";
import { expectWebGpuWhenRequired, webgpuStatus } from "./helpers/webgpu-required.js";

const status = await webgpuStatus();

it("the webgpu backend is available when CI or FEDSIM_REQUIRE_WEBGPU=1 is set", () => {
  expectWebGpuWhenRequired(status);
});

describe.runIf(status.available)("a federation on webgpu", () => {
  let coordinator: CoordinatorHandle | undefined;
  let clients: ClientNode[] = [];
  afterEach(async () => {
    for (const c of clients) c.close();
    await coordinator?.close();
    clients = [];
  });

  it("two clients complete rounds: accuracy improves, tensors stay flat", async () => {
    const { parts, test } = await smallMnist(2, 200, 300);
    const logs: string[] = [];
    const tensorsPerRound: number[] = [];
    coordinator = await startTestCoordinator(
      test,
      {
        backend: "webgpu",
        minAvailableClients: 2,
        strategy: new FedAvg({
          fitConfig: { epochs: 1, batchSize: 20, learningRate: 0.1 },
          minFitClients: 2,
        }),
        onRound: () => {
          tensorsPerRound.push(tf.memory().numTensors);
        },
      },
      logs,
    );
    expect(coordinator.backend.name).toBe("webgpu");
    expect(tf.getBackend()).toBe("webgpu");
    clients = startClients(coordinator.url, parts, () => ({}), logs);
    await Promise.all(clients.map((c) => c.ready));
    const result = await coordinator.run();
    expect(result.rounds).toHaveLength(3);
    for (const r of result.rounds) {
      expect(r.participants).toBe(2);
      expect(r.failures).toBe(0);
    }
    expect(result.final.accuracy).toBeGreaterThan(result.initial.accuracy + 0.2);
    await eventually(() => expect(clients.map((c) => c.roundsTrained)).toEqual([3, 3]));
    // Coordinator and clients share this process: no tensor may accumulate across rounds.
    expect(tensorsPerRound).toHaveLength(3);
    expect(new Set(tensorsPerRound.slice(1)).size).toBe(1);
  });
});
