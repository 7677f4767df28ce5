import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import {
  type ClientFitContext,
  defineClient,
  defineDataset,
  defineModel,
  defineStrategy,
  ErrorCode,
  FedAvg,
  ModelWorkbench,
  parseScenario,
  runScenario,
  type Strategy,
  tf,
  weightedAverage,
} from "../scenarios/api.js";
import { expectError } from "./helpers/expect-error.js";

const ROOT = path.resolve(import.meta.dirname, "..");

/** Four separable clusters in 6 dimensions, seeded; returned as plain arrays, as a user might. */
defineDataset({
  name: "api-test-blobs",
  load({ seed }) {
    let state = seed + 1;
    const random = () => {
      state = (state * 1103515245 + 12345) % 2147483648;
      return state / 2147483648;
    };
    const split = (n: number) => {
      const x: number[] = [];
      const y: number[] = [];
      for (let i = 0; i < n; i++) {
        const label = i % 4;
        for (let f = 0; f < 6; f++) x.push((f % 4 === label ? 2 : 0) + random() - 0.5);
        y.push(label);
      }
      return { x, y, exampleShape: [6], numClasses: 4 };
    };
    return { train: split(400), test: split(100) };
  },
});

defineModel({
  name: "api-test-mlp",
  build: ({ inputShape, numClasses, seed }) =>
    tf.sequential({
      name: "api_test_mlp",
      layers: [
        tf.layers.dense({
          name: "hidden",
          inputShape,
          units: 8,
          activation: "relu",
          kernelInitializer: tf.initializers.glorotUniform({ seed }),
        }),
        tf.layers.dense({ name: "out", units: numClasses, activation: "softmax" }),
      ],
    }),
});

/** A wrapped built-in: FedAvg with both metric aggregations, counting its own rounds. */
defineStrategy({
  name: "api-test-fedavg",
  create(context) {
    const inner = new FedAvg({
      ...context.fedAvgOptions,
      fitMetricsAggregation: weightedAverage(["shiftedLoss"]),
      evaluateMetricsAggregation: weightedAverage(),
    });
    let aggregated = 0;
    const strategy: Strategy = {
      name: "api-test-fedavg",
      requiresIndividualUpdates: false,
      configureFit: (round, available, rng) => inner.configureFit(round, available, rng),
      aggregateFit(round, current, specs, input, failures) {
        const result = inner.aggregateFit(round, current, specs, input, failures);
        aggregated++;
        return { ...result, metrics: { ...result.metrics, aggregated } };
      },
      aggregateEvaluate: (round, results) => inner.aggregateEvaluate(round, results),
      state: () => ({ aggregated }),
      restore: (state) => {
        aggregated = (state as { aggregated: number }).aggregated;
      },
    };
    return strategy;
  },
});

/** Flower's shape: trains, then returns the weights it computed and its own metrics. */
defineClient({
  name: "api-test-client",
  async fit({ train, model, weights, config }: ClientFitContext) {
    const result = await train(config);
    const trained = new Float32Array(weights.length);
    let offset = 0;
    for (const tensor of model.trainableWeights) {
      const values = tensor.read().dataSync() as Float32Array;
      trained.set(values, offset);
      offset += values.length;
    }
    return {
      weights: trained,
      numExamples: result.numExamples,
      metrics: { loss: result.loss, accuracy: result.accuracy, shiftedLoss: result.loss + 100 },
    };
  },
  async evaluate({ evaluate }) {
    const result = await evaluate();
    return { ...result, metrics: { errorRate: 1 - result.accuracy } };
  },
});

const scenarioInput = {
  name: "api-test",
  seed: 3,
  dataset: { name: "api-test-blobs" },
  model: "api-test-mlp",
  strategy: { name: "api-test-fedavg" },
  client: "api-test-client",
  clients: 4,
  rounds: 3,
  fit: { epochs: 2, batchSize: 16, learningRate: 0.2 },
  evaluation: { federated: { fraction: 0.5 } },
};

describe("the registry", () => {
  it("refuses a built-in name and a malformed one", () => {
    expectError(
      () => defineStrategy({ name: "fedavg", create: () => new FedAvg() }),
      ErrorCode.INVALID_CONFIG,
    );
    expectError(
      () => defineModel({ name: "has space", build: () => tf.sequential() }),
      ErrorCode.INVALID_CONFIG,
    );
  });

  it("lets a scenario name registered definitions, and names what is unknown", () => {
    const scenario = parseScenario(scenarioInput);
    expect(scenario.strategy.name).toBe("api-test-fedavg");
    const parse = () => parseScenario({ ...scenarioInput, strategy: { name: "api-test-nope" } });
    expectError(parse, ErrorCode.INVALID_SCENARIO);
    const details = (() => {
      try {
        parse();
      } catch (err) {
        return (err as { details: string[] }).details.join("\n");
      }
      return "";
    })();
    expect(details).toMatch(/strategy\.name: unknown strategy "api-test-nope".*api-test-fedavg/);
  });
});

describe("metric aggregation", () => {
  it("weightedAverage weighs by examples and skips metrics a client did not report", () => {
    const average = weightedAverage();
    const out = average([
      { clientId: "a", numExamples: 1, metrics: { loss: 1, extra: 5 } },
      { clientId: "b", numExamples: 3, metrics: { loss: 3 } },
    ]);
    expect(out).toEqual({ loss: 2.5, extra: 5 });
    expect(
      weightedAverage(["loss"])([{ clientId: "a", numExamples: 2, metrics: { loss: 1, x: 9 } }]),
    ).toEqual({
      loss: 1,
    });
  });
});

describe("a federation of registered definitions", () => {
  it("learns, and the client's fit and evaluate metrics reach the round records through the strategy", async () => {
    const summary = await runScenario(parseScenario(scenarioInput), { processes: 0 });
    expect(summary.strategy).toBe("api-test-fedavg");
    expect(summary.final.accuracy).toBeGreaterThan(summary.initial.accuracy + 0.2);
    const last = summary.rounds[summary.rounds.length - 1];
    expect(last.strategyMetrics?.aggregated).toBe(3);
    // Only the named metric is aggregated; each client's is its loss + 100.
    expect(Object.keys(last.fitMetrics ?? {})).toEqual(["shiftedLoss"]);
    expect(last.fitMetrics?.shiftedLoss).toBeGreaterThan(100);
    expect(last.federatedMetrics?.errorRate).toBeCloseTo(1 - (last.federatedMetrics?.accuracy ?? 0), 6);
  });

  it("refuses forked pools that could not see a client defined in this process", async () => {
    await expect(runScenario(parseScenario(scenarioInput), { processes: 1 })).rejects.toMatchObject({
      code: ErrorCode.INVALID_CONFIG,
    });
  });

  it("a client whose fit returns weights of the wrong length fails with BAD_SHAPE", async () => {
    const client = defineClient({
      name: "api-test-broken",
      fit: () => ({ weights: new Float32Array(3), numExamples: 1 }),
    });
    const model = tf.sequential({ layers: [tf.layers.dense({ name: "d", inputShape: [2], units: 2 })] });
    const values = new Float32Array(6);
    const workbench = new ModelWorkbench({ client });
    const data = {
      x: new Float32Array(4),
      y: new Int32Array([0, 1]),
      n: 2,
      exampleShape: [2],
      numClasses: 2,
    };
    const fit = workbench.fit({ topology: model.toJSON(null, false), specs: [] } as never, data, {
      weights: {
        specs: [
          { name: "d/kernel", shape: [2, 2] },
          { name: "d/bias", shape: [2] },
        ],
        values,
      },
      config: { epochs: 1, batchSize: 2, learningRate: 0.1 },
      seed: 1,
    });
    await expect(fit).rejects.toMatchObject({ code: ErrorCode.BAD_SHAPE });
    workbench.dispose();
    model.dispose();
  });
});

describe("docs/API.md", () => {
  it("quotes every example file exactly as the packed-package test compiles and runs it", () => {
    const docs = readFileSync(path.join(ROOT, "docs", "API.md"), "utf8");
    for (const file of readdirSync(path.join(ROOT, "examples"))) {
      const source = readFileSync(path.join(ROOT, "examples", file), "utf8");
      expect(docs, `examples/${file}`).toContain(`\`\`\`ts\n${source}\`\`\``);
    }
  });
});
