import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import type { ClientNode } from "../client/node.js";
import { type Dataset, subset } from "../common/data/dataset.js";
import { loadEmbeddedMnist } from "../common/data/mnist.js";
import { ErrorCode, FedsimError } from "../common/errors.js";
import { loadModel, saveModel } from "../common/models/io.js";
import { getFlatWeights, setFlatWeights } from "../common/models/tf-weights.js";
import { buildModel } from "../common/models/zoo.js";
import type { FitInstructions, FitResultMessage } from "../common/protocol.js";
import { initBackend } from "../common/tf/backend.js";
import { evaluate, trainLocal } from "../common/train/trainer.js";
import { type FlatWeights, selectTensors, totalSize } from "../common/weights.js";
import type { CoordinatorHandle, CoordinatorOptions } from "../server/coordinator.js";
import { smallMnist, startClients, startTestCoordinator } from "./helpers/federation.js";

/** What the coordinator received in one fitResult: tensor names and the delta's byte length. */
interface ReceivedUpdate {
  round: number;
  tensorNames: string[];
  deltaBytes: number;
}

/** What a client received in one `fit`: which tensors travelled, and whether frozen ones came along. */
interface ReceivedFit {
  round: number;
  tensorNames: string[];
  frozenNames: string[] | null;
}

const CLIENTS = 2;
const LAST_LAYER = "out";
const HEAD_TENSORS = ["out/kernel", "out/bias"];
/** Pretraining uses examples after the clients' ones, so the federation sees new data. */
const PRETRAIN_OFFSET = 2000;
const PRETRAIN_EXAMPLES = 1200;

function bytesOf(values: Float32Array): Buffer {
  return Buffer.from(values.buffer, values.byteOffset, values.byteLength);
}

describe("fine-tuning a saved model over real Socket.IO", () => {
  let dir: string;
  let initModelPath: string;
  let initWeights: FlatWeights;
  let data: { parts: Dataset[]; test: Dataset };
  let coordinator: CoordinatorHandle | undefined;
  let clients: ClientNode[] = [];

  beforeAll(async () => {
    await initBackend("cpu", () => {});
    data = await smallMnist(CLIENTS, 300, 400);
    dir = await mkdtemp(path.join(tmpdir(), "fedsim-finetune-"));
    const shape = { inputShape: data.test.exampleShape, numClasses: data.test.numClasses };
    // A realistic starting point: features learned elsewhere, a fresh head the federation must fit.
    const model = buildModel("tiny-mlp", { ...shape, seed: 11 });
    const pretrain = subset(
      loadEmbeddedMnist().train,
      Array.from({ length: PRETRAIN_EXAMPLES }, (_, i) => PRETRAIN_OFFSET + i),
    );
    await trainLocal(model, pretrain, { epochs: 2, batchSize: 16, learningRate: 0.1, seed: 3 });
    const freshHead = buildModel("tiny-mlp", { ...shape, seed: 12 });
    setFlatWeights(model, selectTensors(getFlatWeights(freshHead), new Set(HEAD_TENSORS)));
    freshHead.dispose();
    initModelPath = (await saveModel(model, path.join(dir, "init"))).modelJsonPath;
    initWeights = getFlatWeights(model);
    model.dispose();
  });

  afterEach(async () => {
    for (const c of clients) c.close();
    await coordinator?.close();
    coordinator = undefined;
    clients = [];
  });

  afterAll(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  /** Starts a coordinator from the saved model, records every update it receives, runs it. */
  async function federate(overrides: Partial<CoordinatorOptions>) {
    const logs: string[] = [];
    coordinator = await startTestCoordinator(
      data.test,
      { initModel: initModelPath, minAvailableClients: CLIENTS, ...overrides },
      logs,
    );
    const received: ReceivedUpdate[] = [];
    coordinator.sockets.io.on("connection", (socket) => {
      socket.onAny((event: string, payload: FitResultMessage) => {
        if (event !== "fitResult" || !payload.update) return;
        received.push({
          round: payload.round,
          tensorNames: payload.update.delta.specs.map((s) => s.name),
          deltaBytes: payload.update.delta.data.byteLength,
        });
      });
    });
    const fits: ReceivedFit[][] = [];
    clients = startClients(coordinator.url, data.parts, undefined, logs);
    clients.forEach((client, i) => {
      fits.push([]);
      client.socket.onAny((event: string, ins: FitInstructions) => {
        if (event !== "fit") return;
        fits[i].push({
          round: ins.round,
          tensorNames: ins.weights.specs.map((s) => s.name),
          frozenNames: ins.frozen ? ins.frozen.specs.map((s) => s.name) : null,
        });
      });
    });
    const initialWeights = getFlatWeights(coordinator.model);
    await Promise.all(clients.map((c) => c.ready));
    const result = await coordinator.run();
    return { result, received, fits, initialWeights };
  }

  it("trains only the last layer: frozen tensors stay bit-for-bit, only trainable tensors travel", async () => {
    const outDir = path.join(dir, "frozen-run");
    const frozen = await federate({ rounds: 2, trainableLayers: [LAST_LAYER], outDir });
    const { result } = frozen;
    const allNames = initWeights.specs.map((s) => s.name);
    const trainableNames = allNames.filter((n) => n.startsWith(`${LAST_LAYER}/`));
    const frozenNames = allNames.filter((n) => !n.startsWith(`${LAST_LAYER}/`));
    expect(trainableNames).toEqual(HEAD_TENSORS);
    expect(frozenNames).toEqual(["fc1/kernel", "fc1/bias"]);

    // The global model starts as the loaded model, exactly.
    expect(frozen.initialWeights.specs).toEqual(initWeights.specs);
    expect(bytesOf(frozen.initialWeights.values).equals(bytesOf(initWeights.values))).toBe(true);
    const saved = await loadModel(initModelPath);
    const savedEval = await evaluate(saved, data.test);
    saved.dispose();
    expect(result.initial.accuracy).toBe(savedEval.accuracy);
    expect(result.initial.loss).toBe(savedEval.loss);

    expect(result.rounds).toHaveLength(2);
    for (const r of result.rounds) {
      expect(r.participants).toBe(CLIENTS);
      expect(r.failures).toBe(0);
    }
    // Pretrained features and a fresh head: from chance to well above it in 2 rounds (~0.8 seen).
    expect(result.initial.accuracy).toBeLessThan(0.3);
    expect(result.final.accuracy).toBeGreaterThan(0.6);

    // The final model on disk: frozen tensors unchanged to the bit, the trained layer moved.
    expect(result.modelPath).toBe(path.join(outDir, "model", "model.json"));
    const finalModel = await loadModel(path.join(outDir, "model", "model.json"));
    const finalWeights = getFlatWeights(finalModel);
    finalModel.dispose();
    expect(finalWeights.specs).toEqual(initWeights.specs);
    const frozenBefore = selectTensors(initWeights, new Set(frozenNames));
    const frozenAfter = selectTensors(finalWeights, new Set(frozenNames));
    expect(bytesOf(frozenAfter.values).equals(bytesOf(frozenBefore.values))).toBe(true);
    const trainedBefore = selectTensors(initWeights, new Set(trainableNames));
    const trainedAfter = selectTensors(finalWeights, new Set(trainableNames));
    let changed = 0;
    for (let i = 0; i < trainedBefore.values.length; i++) {
      if (trainedBefore.values[i] !== trainedAfter.values[i]) changed++;
    }
    expect(changed).toBeGreaterThan(trainedBefore.values.length / 2);

    // Every update the coordinator received holds the trainable tensors only.
    expect(frozen.received).toHaveLength(2 * CLIENTS);
    const trainableBytes = totalSize(trainedBefore.specs) * 4;
    for (const u of frozen.received) {
      expect(u.tensorNames).toEqual(trainableNames);
      expect(u.deltaBytes).toBe(trainableBytes);
    }

    // Frozen tensors travel once per connection: with round 1's request, never again.
    for (const perClient of frozen.fits) {
      expect(perClient.map((f) => f.round)).toEqual([1, 2]);
      for (const f of perClient) expect(f.tensorNames).toEqual(trainableNames);
      expect(perClient[0].frozenNames).toEqual(frozenNames);
      expect(perClient[1].frozenNames).toBeNull();
    }

    // Same saved model, every layer training: the update grows by exactly the frozen tensors' bytes.
    for (const c of clients) c.close();
    await coordinator?.close();
    const full = await federate({ rounds: 1 });
    expect(full.result.rounds[0].participants).toBe(CLIENTS);
    expect(full.received).toHaveLength(CLIENTS);
    const frozenBytes = totalSize(frozenBefore.specs) * 4;
    for (const u of full.received) {
      expect(u.tensorNames).toEqual(allNames);
      expect(u.deltaBytes).toBe(totalSize(initWeights.specs) * 4);
      expect(u.deltaBytes - frozen.received[0].deltaBytes).toBe(frozenBytes);
    }
    for (const perClient of full.fits) expect(perClient[0].frozenNames).toBeNull();
  });

  it("refuses trainableLayers naming an unknown layer, listing the valid ones", async () => {
    const attempt = startTestCoordinator(data.test, {
      initModel: initModelPath,
      trainableLayers: [LAST_LAYER, "fc9"],
    });
    const err = await attempt.then(
      async (started) => {
        await started.close();
        return null;
      },
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(FedsimError);
    expect((err as FedsimError).code).toBe(ErrorCode.INVALID_CONFIG);
    expect((err as FedsimError).message).toContain('"fc9"');
    expect((err as FedsimError).message).toMatch(/fc1/);
    expect((err as FedsimError).message).toMatch(/\bout\b/);
  });
});
