import type { Dataset } from "../../common/data/dataset.js";
import { ErrorCode, FedsimError } from "../../common/errors.js";
import type { TensorSpec } from "../../common/weights.js";
import { partitionForClients } from "../../scenarios/data.js";
import type { Scenario } from "../../scenarios/schema.js";

/**
 * The file bench/references/fedavg_reference.py reads, so PyTorch's FedAvg sees exactly fedsim's federation:
 * the same train and test examples, the same clients (partition indices into the train set) and
 * the same initial global weights.
 *
 * Layout (little-endian):
 *   bytes 0-7    ASCII "FSFEDAV1"
 *   bytes 8-11   uint32 H, the length of the JSON header that follows (padded with spaces to a multiple of 4)
 *   bytes 12-…   the JSON header: { version, exampleShape, numClasses, nTrain, nTest, clientSizes,
 *                weights: [{ name, shape }], blocks: [{ name, dtype, length }] }
 *   then every block of `blocks`, in order, back to back: trainX float32, trainY int32, testX float32,
 *   testY int32, clientIndices int32 (each client's indices, clients in order, sizes in clientSizes),
 *   initialWeights float32 (the tensors of `weights` in order, each in tfjs's row-major layout).
 * Every block starts on a 4-byte boundary, so numpy can view it in place.
 */
export const FEDAVG_EXPORT_MAGIC = "FSFEDAV1";
export const FEDAVG_EXPORT_VERSION = 1;

export interface FedAvgExport {
  exampleShape: number[];
  numClasses: number;
  trainX: Float32Array;
  trainY: Int32Array;
  testX: Float32Array;
  testY: Int32Array;
  /** clientIndices[c]: the rows of the train set client c holds. */
  clientIndices: Int32Array[];
  weightSpecs: TensorSpec[];
  initialWeights: Float32Array;
}

interface Header {
  version: number;
  exampleShape: number[];
  numClasses: number;
  nTrain: number;
  nTest: number;
  clientSizes: number[];
  weights: TensorSpec[];
  blocks: { name: string; dtype: "float32" | "int32"; length: number }[];
}

const BLOCK_NAMES = ["trainX", "trainY", "testX", "testY", "clientIndices", "initialWeights"] as const;

function invalid(message: string): FedsimError {
  return new FedsimError(ErrorCode.INVALID_CONFIG, `FedAvg export: ${message}`);
}

function product(shape: readonly number[]): number {
  return shape.reduce((p, d) => p * d, 1);
}

function checkLabels(name: string, labels: Int32Array, numClasses: number): void {
  for (let i = 0; i < labels.length; i++) {
    if (labels[i] < 0 || labels[i] >= numClasses) {
      throw invalid(`${name}[${i}] = ${labels[i]} is outside [0, ${numClasses})`);
    }
  }
}

function validate(data: FedAvgExport): void {
  const size = product(data.exampleShape);
  if (data.exampleShape.length === 0 || !data.exampleShape.every((d) => Number.isInteger(d) && d > 0)) {
    throw invalid(`exampleShape must be positive integers, got [${data.exampleShape.join(", ")}]`);
  }
  if (!Number.isInteger(data.numClasses) || data.numClasses < 2) {
    throw invalid(`numClasses must be an integer ≥ 2, got ${data.numClasses}`);
  }
  if (data.trainX.length !== data.trainY.length * size) {
    throw invalid(`trainX holds ${data.trainX.length} values, expected ${data.trainY.length} × ${size}`);
  }
  if (data.testX.length !== data.testY.length * size) {
    throw invalid(`testX holds ${data.testX.length} values, expected ${data.testY.length} × ${size}`);
  }
  checkLabels("trainY", data.trainY, data.numClasses);
  checkLabels("testY", data.testY, data.numClasses);
  if (data.clientIndices.length === 0) throw invalid("clientIndices must hold at least one client");
  for (const [c, indices] of data.clientIndices.entries()) {
    for (const row of indices) {
      if (row < 0 || row >= data.trainY.length) {
        throw invalid(`client ${c} holds row ${row}, outside the train set [0, ${data.trainY.length})`);
      }
    }
  }
  const weightCount = data.weightSpecs.reduce((sum, s) => sum + product(s.shape), 0);
  if (weightCount !== data.initialWeights.length) {
    throw invalid(
      `weightSpecs describe ${weightCount} values, initialWeights holds ${data.initialWeights.length}`,
    );
  }
}

function concatIndices(parts: readonly Int32Array[]): Int32Array {
  const out = new Int32Array(parts.reduce((sum, p) => sum + p.length, 0));
  let offset = 0;
  for (const p of parts) {
    out.set(p, offset);
    offset += p.length;
  }
  return out;
}

export function encodeFedAvgExport(data: FedAvgExport): Uint8Array {
  validate(data);
  const arrays: Record<(typeof BLOCK_NAMES)[number], Float32Array | Int32Array> = {
    trainX: data.trainX,
    trainY: data.trainY,
    testX: data.testX,
    testY: data.testY,
    clientIndices: concatIndices(data.clientIndices),
    initialWeights: data.initialWeights,
  };
  const header: Header = {
    version: FEDAVG_EXPORT_VERSION,
    exampleShape: [...data.exampleShape],
    numClasses: data.numClasses,
    nTrain: data.trainY.length,
    nTest: data.testY.length,
    clientSizes: data.clientIndices.map((p) => p.length),
    weights: data.weightSpecs.map((s) => ({ name: s.name, shape: [...s.shape] })),
    blocks: BLOCK_NAMES.map((name) => ({
      name,
      dtype: arrays[name] instanceof Float32Array ? "float32" : "int32",
      length: arrays[name].length,
    })),
  };
  let json = JSON.stringify(header);
  // ASCII-only JSON (names are ASCII), so the padding counts bytes.
  json += " ".repeat((4 - (Buffer.byteLength(json) % 4)) % 4);
  const headerBytes = Buffer.from(json, "utf8");
  const total = 12 + headerBytes.length + BLOCK_NAMES.reduce((sum, n) => sum + arrays[n].byteLength, 0);
  const out = new Uint8Array(total);
  out.set(Buffer.from(FEDAVG_EXPORT_MAGIC, "ascii"), 0);
  new DataView(out.buffer).setUint32(8, headerBytes.length, true);
  out.set(headerBytes, 12);
  let offset = 12 + headerBytes.length;
  for (const name of BLOCK_NAMES) {
    const a = arrays[name];
    // Typed arrays are little-endian on every platform Node runs on.
    out.set(new Uint8Array(a.buffer, a.byteOffset, a.byteLength), offset);
    offset += a.byteLength;
  }
  return out;
}

/** Reads a file written by encodeFedAvgExport (the tests check the round trip). */
export function decodeFedAvgExport(bytes: Uint8Array): FedAvgExport {
  if (bytes.length < 12 || Buffer.from(bytes.subarray(0, 8)).toString("ascii") !== FEDAVG_EXPORT_MAGIC) {
    throw invalid(`not a FedAvg export (no "${FEDAVG_EXPORT_MAGIC}" magic)`);
  }
  const headerLength = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getUint32(8, true);
  if (12 + headerLength > bytes.length) throw invalid("header runs past the end of the file");
  const header = JSON.parse(Buffer.from(bytes.subarray(12, 12 + headerLength)).toString("utf8")) as Header;
  if (header.version !== FEDAVG_EXPORT_VERSION) throw invalid(`unsupported version ${header.version}`);
  let offset = 12 + headerLength;
  const blocks: Record<string, Float32Array | Int32Array> = {};
  for (const block of header.blocks) {
    const byteLength = block.length * 4;
    if (offset + byteLength > bytes.length)
      throw invalid(`block ${block.name} runs past the end of the file`);
    // Copied out, so the arrays are aligned whatever the input's offset.
    const copy = bytes.slice(offset, offset + byteLength);
    blocks[block.name] =
      block.dtype === "float32" ? new Float32Array(copy.buffer) : new Int32Array(copy.buffer);
    offset += byteLength;
  }
  const indices = blocks["clientIndices"] as Int32Array;
  const clientIndices: Int32Array[] = [];
  let start = 0;
  for (const size of header.clientSizes) {
    clientIndices.push(indices.slice(start, start + size));
    start += size;
  }
  const decoded: FedAvgExport = {
    exampleShape: header.exampleShape,
    numClasses: header.numClasses,
    trainX: blocks["trainX"] as Float32Array,
    trainY: blocks["trainY"] as Int32Array,
    testX: blocks["testX"] as Float32Array,
    testY: blocks["testY"] as Int32Array,
    clientIndices,
    weightSpecs: header.weights,
    initialWeights: blocks["initialWeights"] as Float32Array,
  };
  validate(decoded);
  return decoded;
}

/**
 * Each client's rows of the train set, exactly as scenarios/data.ts partitionForClients cuts them.
 */
export function scenarioPartitionIndices(
  scenario: Pick<Scenario, "clients" | "partition" | "seed">,
  train: Dataset,
): Int32Array[] {
  const table = partitionForClients(scenario, train);
  return Array.from({ length: scenario.clients }, (_, c) => table.indicesOf(c).slice());
}

/** The parts of a scenario that bench/references/fedavg_reference.py reproduces. */
export interface TwinnableScenario {
  model: string;
  fractionFit: number;
  clientsPerRound?: number | undefined;
  fit: { learningRateSchedule?: unknown; proximalMu?: number | undefined };
  strategy: { name: string; serverLearningRate?: number | undefined };
  privacy?: unknown;
  dropouts?: unknown;
  stragglers?: unknown;
  attackers?: unknown;
}

/**
 * Why the PyTorch FedAvg script cannot twin this scenario, or null when it can: it runs plain
 * FedAvg (server learning rate 1), every client every round, a constant learning rate, no
 * privacy and no scripted misbehaviour, with the 2NN or the CNN.
 */
export function referenceTwinMismatch(scenario: TwinnableScenario): string | null {
  if (scenario.model !== "mnist-2nn" && scenario.model !== "mnist-cnn") {
    return `model ${scenario.model} has no PyTorch twin (mnist-2nn, mnist-cnn)`;
  }
  if (scenario.strategy.name !== "fedavg" || (scenario.strategy.serverLearningRate ?? 1) !== 1) {
    return "the PyTorch twin runs plain FedAvg (strategy fedavg, server learning rate 1)";
  }
  if (scenario.fractionFit !== 1 || scenario.clientsPerRound !== undefined) {
    return "the PyTorch twin trains every client every round (fractionFit 1, no clientsPerRound)";
  }
  if (scenario.fit.learningRateSchedule !== undefined || (scenario.fit.proximalMu ?? 0) !== 0) {
    return "the PyTorch twin trains with a constant learning rate and no proximal term";
  }
  for (const key of ["privacy", "dropouts", "stragglers", "attackers"] as const) {
    if (scenario[key] !== undefined) return `the PyTorch twin has no ${key}`;
  }
  return null;
}
