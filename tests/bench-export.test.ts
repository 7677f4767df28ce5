import { describe, expect, it } from "vitest";
import {
  decodeFedAvgExport,
  encodeFedAvgExport,
  FEDAVG_EXPORT_MAGIC,
  type FedAvgExport,
  referenceTwinMismatch,
  scenarioPartitionIndices,
} from "../bench/sections/fedavg-export.js";
import type { Dataset } from "../common/data/dataset.js";
import { partitionIndices } from "../common/data/partition.js";
import { FedsimError } from "../common/errors.js";
import { clientData, partitionForClients } from "../scenarios/data.js";
import { parseScenario } from "../scenarios/schema.js";

function sample(): FedAvgExport {
  const size = 6;
  const nTrain = 9;
  const nTest = 4;
  return {
    exampleShape: [2, 3, 1],
    numClasses: 3,
    trainX: Float32Array.from({ length: nTrain * size }, (_, i) => i / 7),
    trainY: Int32Array.from({ length: nTrain }, (_, i) => i % 3),
    testX: Float32Array.from({ length: nTest * size }, (_, i) => -i / 3),
    testY: Int32Array.from([2, 1, 0, 2]),
    clientIndices: [Int32Array.from([0, 4, 8]), Int32Array.from([1, 2]), Int32Array.from([3, 5, 6, 7])],
    weightSpecs: [
      { name: "fc1/kernel", shape: [6, 2] },
      { name: "fc1/bias", shape: [2] },
    ],
    initialWeights: Float32Array.from({ length: 14 }, (_, i) => Math.sin(i)),
  };
}

describe("the FedAvg export file", () => {
  it("round-trips every array, the partition and the weight specs exactly", () => {
    const data = sample();
    const back = decodeFedAvgExport(encodeFedAvgExport(data));
    expect(back.exampleShape).toEqual(data.exampleShape);
    expect(back.numClasses).toBe(3);
    expect(back.trainX).toEqual(data.trainX);
    expect(back.trainY).toEqual(data.trainY);
    expect(back.testX).toEqual(data.testX);
    expect(back.testY).toEqual(data.testY);
    expect(back.clientIndices).toEqual(data.clientIndices);
    expect(back.weightSpecs).toEqual(data.weightSpecs);
    expect(back.initialWeights).toEqual(data.initialWeights);
  });

  it("starts with the magic and a header length, and puts every block on a 4-byte boundary", () => {
    const bytes = encodeFedAvgExport(sample());
    expect(Buffer.from(bytes.subarray(0, 8)).toString("ascii")).toBe(FEDAVG_EXPORT_MAGIC);
    const headerLength = new DataView(bytes.buffer).getUint32(8, true);
    expect(headerLength % 4).toBe(0);
    const header = JSON.parse(Buffer.from(bytes.subarray(12, 12 + headerLength)).toString("utf8"));
    expect(header.blocks.map((b: { name: string }) => b.name)).toEqual([
      "trainX",
      "trainY",
      "testX",
      "testY",
      "clientIndices",
      "initialWeights",
    ]);
    expect(header.clientSizes).toEqual([3, 2, 4]);
    const blockBytes = header.blocks.reduce((sum: number, b: { length: number }) => sum + 4 * b.length, 0);
    expect(bytes.length).toBe(12 + headerLength + blockBytes);
    // The first train value sits right after the header, little-endian.
    expect(new DataView(bytes.buffer).getFloat32(12 + headerLength + 4, true)).toBeCloseTo(1 / 7, 6);
  });

  it("refuses inconsistent input, naming what is wrong", () => {
    const badRow = { ...sample(), clientIndices: [Int32Array.from([0, 9])] };
    expect(() => encodeFedAvgExport(badRow)).toThrow(/row 9/);
    const badLabel = { ...sample(), testY: Int32Array.from([0, 1, 3, 0]) };
    expect(() => encodeFedAvgExport(badLabel)).toThrow(/testY\[2\]/);
    const badWeights = { ...sample(), initialWeights: new Float32Array(13) };
    expect(() => encodeFedAvgExport(badWeights)).toThrow(FedsimError);
    expect(() => decodeFedAvgExport(new Uint8Array(32))).toThrow(/magic/);
  });
});

function labelled(n: number): Dataset {
  return {
    name: "toy",
    x: Float32Array.from({ length: n * 2 }, (_, i) => i),
    y: Int32Array.from({ length: n }, (_, i) => (i * 7) % 5),
    n,
    exampleShape: [2],
    numClasses: 5,
  };
}

describe("scenarioPartitionIndices", () => {
  for (const partition of [{ kind: "iid" }, { kind: "shards", shardsPerClient: 2 }] as const) {
    it(`gives each client the rows partitionForClients gives it (${partition.kind})`, () => {
      const scenario = parseScenario({ name: "toy", seed: 5, clients: 4, partition });
      const train = labelled(40);
      const indices = scenarioPartitionIndices(scenario, train);
      const table = partitionForClients(scenario, train);
      expect(indices).toHaveLength(4);
      expect(indices).toEqual(partitionIndices(train.y, 4, partition, 5));
      for (let c = 0; c < 4; c++) {
        const part = clientData(table, train, c);
        expect(Array.from(part.y)).toEqual(Array.from(indices[c], (row) => train.y[row]));
        expect(Array.from(part.x)).toEqual(Array.from(indices[c]).flatMap((row) => [2 * row, 2 * row + 1]));
      }
    });
  }
});

describe("referenceTwinMismatch", () => {
  const quickstart = parseScenario({
    name: "q",
    model: "mnist-2nn",
    fit: { epochs: 1, batchSize: 10, learningRate: 0.05 },
    strategy: { name: "fedavg" },
  });

  it("accepts plain FedAvg with every client sampled", () => {
    expect(referenceTwinMismatch(quickstart)).toBeNull();
  });

  it("names what the PyTorch script cannot reproduce", () => {
    expect(referenceTwinMismatch({ ...quickstart, fractionFit: 0.5 })).toMatch(/every client/);
    expect(referenceTwinMismatch({ ...quickstart, model: "logreg" })).toMatch(/logreg/);
    expect(referenceTwinMismatch({ ...quickstart, strategy: { name: "fedadam" } })).toMatch(/FedAvg/);
    expect(referenceTwinMismatch({ ...quickstart, privacy: { envelope: true } })).toMatch(/privacy/);
  });
});
