import { describe, expect, it } from "vitest";
import { packedPartition } from "../common/data/partition-table.js";
import { distributionOf, quantileOfSorted } from "../common/distribution.js";
import { histogram, SHOWN_CLIENTS, summarizeClientData } from "../scenarios/report/client-data.js";
import { runStyle } from "../scenarios/report/compare.js";
import { formatRounds } from "../scenarios/report/format.js";
import { percentAxis, percentFit } from "../scenarios/report/render.js";
import { configDifferences, type RunConfig, runConfigOf } from "../scenarios/report/run-config.js";
import { parseScenario } from "../scenarios/schema.js";
import type { FitSuccess } from "../server/client-proxy.js";
import { updateNormsOf } from "../server/fit-collection.js";

/** What a run's summary carries for its report, computed where the data is known. */
describe("report data", () => {
  it("summarises a distribution by its five numbers, mean and count", () => {
    expect(distributionOf([4, 1, 3, 2, 5, Number.NaN])).toEqual({
      count: 5,
      min: 1,
      q1: 2,
      median: 3,
      q3: 4,
      max: 5,
      mean: 3,
    });
    expect(quantileOfSorted([0, 10], 0.25)).toBe(2.5);
    expect(distributionOf([])).toBeUndefined();
  });

  it("records update norms only where the coordinator sees each update", () => {
    const success = (values: number[]): FitSuccess => ({
      ok: true,
      clientId: "c",
      delta: Float32Array.from(values),
    });
    const successes = [success([3, 4]), success([0, 1]), success([6, 8])];
    expect(updateNormsOf(successes, {})).toMatchObject({ count: 3, min: 1, median: 5, max: 10 });
    expect(updateNormsOf(successes, { dp: { clipNorm: 1 } as never })).toBeUndefined();
    expect(updateNormsOf(successes, { secagg: {} as never })).toBeUndefined();
  });

  it("counts every client's examples and the first clients' labels from the partition", () => {
    const labels = Int32Array.from({ length: 600 }, (_, i) => i % 10);
    const table = packedPartition(labels, 60, { kind: "shards", shardsPerClient: 2 }, 3);
    const data = summarizeClientData(table, labels, 10);
    expect(data.clients).toBe(60);
    expect(data.sizes.total).toBe(600);
    expect(data.sizeHistogram.counts.reduce((a, b) => a + b, 0)).toBe(60);
    expect(data.shown).toHaveLength(SHOWN_CLIENTS);
    for (const { client, labels: counts } of data.shown) {
      expect(counts.reduce((a, b) => a + b, 0)).toBe(table.sizeOf(client));
      // Two shards of sorted labels: at most two classes per client.
      expect(counts.filter((n) => n > 0).length).toBeLessThanOrEqual(2);
    }
    expect(histogram([5, 5, 5])).toEqual({ edges: [5, 5], counts: [3] });
    expect(histogram([0, 10]).counts.reduce((a, b) => a + b, 0)).toBe(2);
  });

  it("flattens a run's configuration, without secrets, and finds the fields that differ", () => {
    const scenario = parseScenario({
      name: "c",
      seed: 4,
      partition: { kind: "dirichlet", alpha: 0.5 },
      fit: { epochs: 5, batchSize: 10, learningRate: 0.1 },
      strategy: { name: "fedprox", proximalMu: 0.01 },
      privacy: { dp: { noiseMultiplier: 1, clipNorm: 1 } },
      external: { clients: 2, token: "a-secret-token-of-32-characters!" },
    });
    const config = runConfigOf(scenario, "fedprox");
    expect(config).toMatchObject({
      model: "mnist-2nn",
      dataset: "mnist",
      partition: "dirichlet",
      "partition.alpha": 0.5,
      "fit.epochs": 5,
      "fit.batchSize": 10,
      "fit.learningRate": 0.1,
      strategy: "fedprox",
      "strategy.proximalMu": 0.01,
      privacy: "dp (central)",
      "privacy.dp.noiseMultiplier": 1,
      seed: 4,
    });
    expect(JSON.stringify(config)).not.toContain("a-secret-token");
    const other = { ...config, "fit.learningRate": 0.05, seed: 4 };
    const iid: RunConfig = { ...config, partition: "iid" };
    delete iid["partition.alpha"];
    expect(configDifferences([config, other])).toEqual(["fit.learningRate"]);
    expect(configDifferences([config, iid, undefined])).toEqual(["partition", "partition.alpha"]);
    expect(configDifferences([config, undefined])).toEqual([]);
  });

  it("phrases rounds to target so a fraction of a round reads as the round it fell in", () => {
    expect(formatRounds(null)).toBe("not reached");
    expect(formatRounds(0)).toBe("initial model");
    expect(formatRounds(20)).toBe("round 20");
    expect(formatRounds(3.5)).toBe("in round 4 (3.5)");
    expect(formatRounds(1.96)).toBe("in round 2 (2.0)");
  });

  it("gives each compared run its own dash pattern and marker as well as its colour", () => {
    const styles = Array.from({ length: 6 }, (_, i) => runStyle(i));
    expect(new Set(styles.map((s) => JSON.stringify(s.dash))).size).toBe(6);
    expect(new Set(styles.map((s) => s.symbol)).size).toBe(6);
    expect(new Set(styles.map((s) => s.color)).size).toBe(6);
  });

  it("fits the accuracy axis to the rounds, leaving a near-chance initial model below it", () => {
    const points: Array<[number, number]> = [
      [0, 9.8],
      [1, 95.1],
      [2, 97.4],
      [3, 98.2],
    ];
    const fit = percentFit(points);
    expect(fit.note).toBe("round 0 (9.8 %) is below the axis");
    const axis = percentAxis(fit.values, undefined) as { min: number; max: number };
    expect(axis.min).toBeGreaterThanOrEqual(90);
    expect(axis.min).toBeLessThanOrEqual(95.1);
    expect(axis.max).toBeGreaterThanOrEqual(98.2);
    expect(axis.max).toBeLessThanOrEqual(100);
    // An initial model close to the rounds stays on the axis.
    const close = percentFit([
      [0, 60],
      [1, 70],
      [2, 80],
    ]);
    expect(close.note).toBeUndefined();
    expect((percentAxis(close.values, undefined) as { min: number }).min).toBeLessThanOrEqual(60);
  });
});
