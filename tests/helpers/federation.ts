import { ClientNode, type ClientNodeOptions } from "../../client/node.js";
import { ModelWorkbench } from "../../client/workbench.js";
import { type Dataset, subset } from "../../common/data/dataset.js";
import { loadEmbeddedMnist } from "../../common/data/mnist.js";
import { partitionDataset } from "../../common/data/partition.js";
import { FedAvg } from "../../common/strategy/fedavg.js";
import {
  type CoordinatorHandle,
  type CoordinatorOptions,
  startCoordinator,
} from "../../server/coordinator.js";

/** A small federation on the embedded MNIST: a real coordinator on port 0 and real clients. */
export async function smallMnist(clients: number, perClient: number, testSize = 500, seed = 1) {
  const { train, test } = loadEmbeddedMnist();
  const parts = partitionDataset(
    subset(
      train,
      Array.from({ length: clients * perClient }, (_, i) => i),
    ),
    clients,
    { kind: "iid" },
    seed,
  );
  return {
    parts,
    test: subset(
      test,
      Array.from({ length: testSize }, (_, i) => i),
    ),
  };
}

export async function startTestCoordinator(
  testData: Dataset,
  overrides: Partial<CoordinatorOptions> = {},
  logs: string[] = [],
): Promise<CoordinatorHandle> {
  return startCoordinator({
    host: "127.0.0.1",
    port: 0,
    rounds: 3,
    model: "tiny-mlp",
    testData,
    strategy: new FedAvg({ fitConfig: { epochs: 1, batchSize: 16, learningRate: 0.1 }, minFitClients: 1 }),
    deadlineMs: 30_000,
    minAvailableClients: 3,
    waitForClientsMs: 30_000,
    seed: 7,
    backend: "cpu",
    auth: { kind: "open" },
    log: (line) => logs.push(line),
    ...overrides,
  });
}

export function startClients(
  url: string,
  parts: Dataset[],
  extra: (i: number) => Partial<ClientNodeOptions> = () => ({}),
  logs: string[] = [],
): ClientNode[] {
  const workbench = new ModelWorkbench();
  return parts.map(
    (data, i) =>
      new ClientNode({
        url,
        data,
        workbench,
        label: `client-${i}`,
        seed: i,
        log: (l) => logs.push(l),
        ...extra(i),
      }),
  );
}
