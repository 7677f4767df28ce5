// The federation to simulate: data, clients, rounds, and your strategy and model by name.
// Every field is in fedsim's docs/SCENARIOS.md; docs/API.md lists the extension points.
import { defineScenario } from "fedsim";
// Imported for what they register (pool processes import this file again to see them).
import "./model.js";
import "./strategy.js";

export default defineScenario({
  scenario: {
    name: "__NAME__",
    seed: 0,
    // FedProx's Synthetic(1, 1): generated in memory, one device per client.
    dataset: { name: "synthetic", synthetic: { alpha: 1, beta: 1, numDevices: 10 } },
    partition: { kind: "natural" },
    model: "mlp",
    strategy: { name: "capped-fedavg", options: { maxStep: 5 } },
    clients: 10,
    rounds: 3,
    fit: { epochs: 1, batchSize: 10, learningRate: 0.05 },
  },
  hooks: {
    onRoundEnd(context, record) {
      context.log(`accuracy ${record.accuracy.toFixed(3)}`);
    },
  },
});
