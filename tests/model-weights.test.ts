import * as tf from "@tensorflow/tfjs";
import { beforeAll, describe, expect, it } from "vitest";
import { ErrorCode } from "../common/errors.js";
import {
  getFlatDelta,
  getFlatWeights,
  setFlatWeights,
  setTrainableLayers,
} from "../common/models/tf-weights.js";
import { buildModel } from "../common/models/zoo.js";
import { createRng } from "../common/rng.js";
import { expectError } from "./helpers/expect-error.js";

beforeAll(async () => {
  await tf.setBackend("cpu");
  tf.enableProdMode();
});

function tinyCnn(): tf.LayersModel {
  return buildModel("tiny-cnn", { inputShape: [28, 28, 1], numClasses: 10, seed: 5 });
}

/** Moves every weight by a seeded amount, as training would. */
function perturb(model: tf.LayersModel, seed: number): void {
  const rng = createRng(seed);
  const current = getFlatWeights(model);
  const moved = current.values.map((v) => v + (rng.next() - 0.5) * 0.1);
  setFlatWeights(model, { specs: current.specs, values: moved });
}

describe("getFlatDelta", () => {
  it("is the trainable weights minus the base, bit for bit, in model order", () => {
    const model = tinyCnn();
    setTrainableLayers(model, ["conv2", "out"]);
    const base = getFlatWeights(model, { trainableOnly: true });
    perturb(model, 1);
    const delta = getFlatDelta(model, base);
    const local = getFlatWeights(model, { trainableOnly: true });
    expect(delta.specs).toEqual(local.specs);
    expect(delta.specs.map((s) => s.name)).toEqual(["conv2/kernel", "conv2/bias", "out/kernel", "out/bias"]);
    const expected = local.values.map((v, i) => v - base.values[i]);
    expect(Array.from(delta.values)).toEqual(Array.from(expected));
    expect(delta.values.some((v) => v !== 0)).toBe(true);
    // The base is read, never written.
    expect(Array.from(base.values)).not.toEqual(Array.from(local.values));
    model.dispose();
  });

  it("refuses a base that does not name exactly the trainable tensors", () => {
    const model = tinyCnn();
    const all = getFlatWeights(model);
    setTrainableLayers(model, ["out"]);
    expectError(() => getFlatDelta(model, all), ErrorCode.BAD_SHAPE, "do not match");
    const trainable = getFlatWeights(model, { trainableOnly: true });
    const short = { specs: trainable.specs, values: trainable.values.subarray(1) };
    expectError(() => getFlatDelta(model, short), ErrorCode.BAD_SHAPE, "do not match");
    model.dispose();
  });
});
