import { afterEach, describe, expect, it } from "vitest";
import type { ClientNode } from "../client/node.js";
import { FedAvg } from "../common/strategy/fedavg.js";
import type { CoordinatorHandle } from "../server/coordinator.js";
import { PrivacyPlugin } from "../server/plugins/privacy.js";
import { smallMnist, startClients, startTestCoordinator } from "./helpers/federation.js";

/**
 * Under secure aggregation the coordinator divides the unmasked Σ wₖ·Δₖ by the unmasked Σ wₖ, and
 * both are the clients' word. A client that runs the whole protocol but encodes a negative weight
 * (here through the real masking code, by reporting a negative example count to it) must not
 * get that total into the division: the round keeps the model and says why, and the next round,
 * without the hostile weight, aggregates as usual.
 */
describe("secure aggregation with a hostile weight", () => {
  let coordinator: CoordinatorHandle | undefined;
  let clients: ClientNode[] = [];
  afterEach(async () => {
    for (const c of clients) c.close();
    clients = [];
    await coordinator?.close();
    coordinator = undefined;
  });

  it("refuses a round whose total weight is ≤ 0 and keeps the model bit for bit", async () => {
    const { parts, test } = await smallMnist(3, 150, 200);
    const models: Float32Array[] = [];
    const handle = await startTestCoordinator(test, {
      rounds: 2,
      minAvailableClients: 3,
      strategy: new FedAvg({ fitConfig: { epochs: 1, batchSize: 10, learningRate: 0.1 }, minFitClients: 1 }),
      plugin: ({ log }) =>
        new PrivacyPlugin({
          envelope: false,
          secagg: { graph: "complete", clipRange: 1, maxWeight: 10_000, stageTimeoutMs: 30_000, seed: 3 },
          expectedClientsPerRound: 3,
          log,
        }),
      onRound: () => {
        models.push(handle.loop.globalWeights.values.slice());
      },
    });
    coordinator = handle;
    const initial = handle.loop.globalWeights.values.slice();
    clients = startClients(handle.url, parts, (i) =>
      i === 2
        ? {
            behaviour: {
              // 2·150 honest weight against −10,000: the unmasked total is negative.
              transformUpdate: (u, round) => (round === 1 ? { ...u, numExamples: -10_000 } : u),
            },
          }
        : {},
    );
    await Promise.all(clients.map((c) => c.ready));
    const result = await handle.run();

    const [hostile, honest] = result.rounds;
    expect(hostile.participants).toBe(3);
    expect(hostile.kept).toMatch(
      /BAD_AGGREGATE: secagg: the unmasked total weight -9\d{3}(\.\d+)? is outside \[3, 30000\]/,
    );
    expect(models[0].every((v, i) => v === initial[i])).toBe(true);
    expect(honest.kept).toBeUndefined();
    expect(honest.participants).toBe(3);
    expect(models[1].every(Number.isFinite)).toBe(true);
    expect(models[1].some((v, i) => v !== initial[i])).toBe(true);
    expect(result.final.accuracy).toBeGreaterThan(result.initial.accuracy);
  });
});
