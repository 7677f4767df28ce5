import { mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import * as tf from "@tensorflow/tfjs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FedsimError } from "../common/errors.js";
import { fileIOHandler, loadModel, saveModel } from "../common/models/io.js";
import { getFlatWeights, modelSpecs } from "../common/models/tf-weights.js";
import { buildModel } from "../common/models/zoo.js";
import { createRng } from "../common/rng.js";

let root: string;

beforeAll(async () => {
  await tf.setBackend("cpu");
  tf.enableProdMode();
  root = await mkdtemp(path.join(tmpdir(), "fedsim-model-io-"));
});

afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

function predict(model: tf.LayersModel, x: Float32Array, shape: number[]): number[] {
  return tf.tidy(() => Array.from((model.predict(tf.tensor(x, shape)) as tf.Tensor).dataSync()));
}

async function errorOf(promise: Promise<unknown>): Promise<FedsimError> {
  try {
    await promise;
  } catch (err) {
    expect(err).toBeInstanceOf(FedsimError);
    return err as FedsimError;
  }
  throw new Error("expected a rejection");
}

describe("saveModel / loadModel", () => {
  it("round-trips a model with identical predictions, through loadModel and fileIOHandler", async () => {
    const model = buildModel("tiny-cnn", { inputShape: [8, 8, 1], numClasses: 3, seed: 4 });
    const dir = path.join(root, "nested", "tiny");
    const { modelJsonPath, weightsPath } = await saveModel(model, dir);
    expect(modelJsonPath).toBe(path.join(dir, "model.json"));
    expect(weightsPath).toBe(path.join(dir, "weights.bin"));
    // Temp files are renamed away, nothing else is left in the directory.
    expect((await readdir(dir)).sort()).toEqual(["model.json", "weights.bin"]);

    const rng = createRng(1);
    const x = Float32Array.from({ length: 5 * 64 }, () => rng.next());
    const expected = predict(model, x, [5, 8, 8, 1]);
    const loaded = await loadModel(modelJsonPath);
    expect(predict(loaded, x, [5, 8, 8, 1])).toEqual(expected);
    expect(modelSpecs(loaded)).toEqual(modelSpecs(model));
    expect(getFlatWeights(loaded).values).toEqual(getFlatWeights(model).values);

    const viaHandler = await tf.loadLayersModel(fileIOHandler(modelJsonPath));
    expect(predict(viaHandler, x, [5, 8, 8, 1])).toEqual(expected);
    for (const m of [model, loaded, viaHandler]) m.dispose();
  });

  it("writes the tfjs layers-model layout", async () => {
    const model = buildModel("tiny-mlp", { inputShape: [6], numClasses: 2, seed: 1 });
    const { modelJsonPath, weightsPath } = await saveModel(model, path.join(root, "layout"));
    const json = JSON.parse(await readFile(modelJsonPath, "utf8"));
    expect(json.format).toBe("layers-model");
    expect(json.convertedBy).toBeNull();
    expect(typeof json.generatedBy).toBe("string");
    expect(json.modelTopology.class_name).toBe("Sequential");
    expect(json.weightsManifest).toHaveLength(1);
    expect(json.weightsManifest[0].paths).toEqual(["weights.bin"]);
    expect(json.weightsManifest[0].weights.map((w: { name: string }) => w.name)).toEqual([
      "fc1/kernel",
      "fc1/bias",
      "out/kernel",
      "out/bias",
    ]);
    const bytes = await readFile(weightsPath);
    expect(bytes.byteLength).toBe(model.countParams() * 4);
    model.dispose();
  });

  it("overwrites an existing save in place", async () => {
    const dir = path.join(root, "overwrite");
    const first = buildModel("logreg", { inputShape: [4], numClasses: 2, seed: 1 });
    const second = buildModel("logreg", { inputShape: [4], numClasses: 2, seed: 2 });
    await saveModel(first, dir);
    const { modelJsonPath } = await saveModel(second, dir);
    const loaded = await loadModel(modelJsonPath);
    expect(getFlatWeights(loaded).values).toEqual(getFlatWeights(second).values);
    for (const m of [first, second, loaded]) m.dispose();
  });

  it("loads weights split over several shards", async () => {
    const model = buildModel("tiny-mlp", { inputShape: [6], numClasses: 2, seed: 3 });
    const dir = path.join(root, "shards");
    const { modelJsonPath, weightsPath } = await saveModel(model, dir);
    const bytes = await readFile(weightsPath);
    const cut = 100;
    await writeFile(path.join(dir, "group1-shard1of2.bin"), bytes.subarray(0, cut));
    await writeFile(path.join(dir, "group1-shard2of2.bin"), bytes.subarray(cut));
    await rm(weightsPath);
    const json = JSON.parse(await readFile(modelJsonPath, "utf8"));
    json.weightsManifest[0].paths = ["group1-shard1of2.bin", "group1-shard2of2.bin"];
    await writeFile(modelJsonPath, JSON.stringify(json));
    const loaded = await loadModel(modelJsonPath);
    expect(getFlatWeights(loaded).values).toEqual(getFlatWeights(model).values);
    model.dispose();
    loaded.dispose();
  });

  it("reports a missing model.json or weight file as DATA_NOT_FOUND", async () => {
    const missing = await errorOf(loadModel(path.join(root, "nowhere", "model.json")));
    expect(missing.code).toBe("DATA_NOT_FOUND");

    const model = buildModel("logreg", { inputShape: [4], numClasses: 2, seed: 1 });
    const { modelJsonPath, weightsPath } = await saveModel(model, path.join(root, "no-weights"));
    await rm(weightsPath);
    const noWeights = await errorOf(loadModel(modelJsonPath));
    expect(noWeights.code).toBe("DATA_NOT_FOUND");
    expect(noWeights.message).toContain("weights.bin");
    model.dispose();
  });

  it("reports corrupt files as BAD_DATA", async () => {
    const model = buildModel("logreg", { inputShape: [4], numClasses: 2, seed: 1 });
    const dir = path.join(root, "corrupt");
    const { modelJsonPath, weightsPath } = await saveModel(model, dir);
    const good = await readFile(modelJsonPath, "utf8");

    await writeFile(modelJsonPath, good.slice(0, good.length / 2));
    expect((await errorOf(loadModel(modelJsonPath))).code).toBe("BAD_DATA");

    await writeFile(modelJsonPath, JSON.stringify({ format: "layers-model" }));
    expect((await errorOf(loadModel(modelJsonPath))).code).toBe("BAD_DATA");

    const badTopology = JSON.parse(good);
    badTopology.modelTopology = { class_name: "NoSuchModel", config: {} };
    await writeFile(modelJsonPath, JSON.stringify(badTopology));
    expect((await errorOf(loadModel(modelJsonPath))).code).toBe("BAD_DATA");

    const escaping = JSON.parse(good);
    escaping.weightsManifest[0].paths = ["../../etc/passwd"];
    await writeFile(modelJsonPath, JSON.stringify(escaping));
    expect((await errorOf(loadModel(modelJsonPath))).code).toBe("BAD_DATA");

    await writeFile(modelJsonPath, good);
    const weights = await readFile(weightsPath);
    await writeFile(weightsPath, weights.subarray(0, weights.byteLength - 4));
    const truncated = await errorOf(loadModel(modelJsonPath));
    expect(truncated.code).toBe("BAD_DATA");
    expect(truncated.message).toContain("bytes");

    const viaHandler = await errorOf(tf.loadLayersModel(fileIOHandler(modelJsonPath)));
    expect(viaHandler.code).toBe("BAD_DATA");
    model.dispose();
  });
});
