// `npm test`: node's test runner on the compiled files. Add a test for each piece you change.
import assert from "node:assert/strict";
import { test } from "node:test";
import { runScenario } from "fedsim";
import { mlp } from "../src/model.js";
import definition from "../src/scenario.js";
import { capStep } from "../src/strategy.js";

test("capStep leaves a short step alone and shortens a long one to maxStep", () => {
  const current = new Float32Array([0, 0]);
  assert.deepEqual([...capStep(current, new Float32Array([0.5, 0.25]), 1)], [0.5, 0.25]);
  const capped = capStep(current, new Float32Array([3, 4]), 1);
  assert.ok(Math.abs(Math.hypot(capped[0], capped[1]) - 1) < 1e-6);
});

test("the model maps an example to one probability per class", () => {
  const model = mlp.build({ inputShape: [60], numClasses: 10, seed: 1 });
  assert.deepEqual(model.outputs[0].shape, [null, 10]);
  model.dispose();
});

test("two rounds of the scenario beat the untrained model", async () => {
  const summary = await runScenario({ ...definition.scenario, rounds: 2 }, { processes: 0 });
  assert.equal(summary.strategy, "capped-fedavg");
  assert.ok(summary.final.accuracy > summary.initial.accuracy, JSON.stringify(summary.final));
});
