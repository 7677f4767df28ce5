// examples/scenario.ts: a scenario that names the definitions above, with round hooks.
import { defineScenario } from "fedsim";
// Imported for what they register; a pool process importing this file registers them too.
import "./client.js";
import "./dataset.js";
import "./model.js";
import "./strategy.js";

export default defineScenario({
  scenario: {
    name: "custom-everything",
    seed: 1,
    dataset: { name: "blobs", options: { classes: 4, features: 8 } },
    partition: { kind: "iid" },
    model: "small-mlp",
    strategy: { name: "capped-fedavg", options: { maxStep: 5 } },
    client: "reporting-client",
    clients: 4,
    rounds: 3,
    fit: { epochs: 2, batchSize: 16, learningRate: 0.1 },
    evaluation: { federated: { fraction: 0.5 } },
  },
  hooks: {
    onRoundEnd(context, record) {
      context.log(`accuracy ${record.accuracy.toFixed(3)}, ${record.participants} clients`);
    },
  },
});
