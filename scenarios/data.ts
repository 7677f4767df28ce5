import { type Dataset, subset, type TrainTest } from "../common/data/dataset.js";
import { type PartitionTable, packedPartition, sampledPartition } from "../common/data/partition-table.js";
import { loadDataset } from "../common/data/registry.js";
import type { Scenario } from "./schema.js";

/** The scenario's train/test data, with the optional limits applied. Same on every process. */
export async function loadScenarioData(scenario: Scenario): Promise<TrainTest> {
  const d = scenario.dataset;
  const data = await loadDataset({
    name: d.name,
    ...(d.dataDir ? { dataDir: d.dataDir } : {}),
    ...(d.path ? { path: d.path } : {}),
    seed: scenario.seed,
    ...(d.synthetic ? { synthetic: d.synthetic } : {}),
  });
  const train = d.limitTrain && d.limitTrain < data.train.n ? firstN(data.train, d.limitTrain) : data.train;
  const test = d.limitTest && d.limitTest < data.test.n ? firstN(data.test, d.limitTest) : data.test;
  return { ...data, train, test };
}

function firstN(ds: Dataset, n: number): Dataset {
  const picked = subset(
    ds,
    Array.from({ length: n }, (_, i) => i),
    ds.name,
  );
  return ds.groups ? { ...picked, groups: ds.groups.slice(0, n) } : picked;
}

/**
 * Which examples each client holds; deterministic in the scenario's seed, so pool processes agree.
 * A table, not datasets: a client's data is copied out only when it trains (`clientData`).
 */
export function partitionForClients(
  scenario: Pick<Scenario, "clients" | "partition" | "seed">,
  train: Dataset,
): PartitionTable {
  const p = scenario.partition;
  if (p.kind === "sample") return sampledPartition(train.n, scenario.clients, p.size, scenario.seed);
  return packedPartition(train.y, scenario.clients, p, scenario.seed, train.groups);
}

/** One client's training data, copied out of `train`. */
export function clientData(table: PartitionTable, train: Dataset, client: number): Dataset {
  return subset(train, table.indicesOf(client), `${train.name}/client-${client}`);
}
