// examples/client.ts: custom client logic, for virtual clients and real client nodes alike.
import { defineClient } from "fedsim";

/**
 * Trains with fedsim's own trainer and reports extra metrics; `fit` could as well train `model`
 * itself (it holds the global weights) or return `weights` it computed.
 */
export const reportingClient = defineClient({
  name: "reporting-client",
  async fit({ config, train }) {
    const result = await train(config);
    return {
      numExamples: result.numExamples,
      metrics: {
        loss: result.loss,
        accuracy: result.accuracy,
        epochsCompleted: result.epochsCompleted,
        steps: result.steps,
        trainAccuracy: result.accuracy,
      },
    };
  },
  async evaluate({ evaluate }) {
    const result = await evaluate();
    return {
      loss: result.loss,
      accuracy: result.accuracy,
      numExamples: result.numExamples,
      metrics: { errorRate: 1 - result.accuracy },
    };
  },
});
