/**
 * A scripted federation (the scenario engine's TypeScript form): what a YAML file cannot say.
 * 40 clients with a spread of device speeds and link latencies; at round 5 a seeded 30% of the
 * clients vanish for good, at round 8 every link gets twice as slow, and the run stops early if
 * accuracy collapses. Over-selection (20% extra) keeps rounds from waiting on the slowest.
 *
 *   npm run build && node dist/cli/index.js run scenarios/churn-scripted.ts --out runs/churn
 */
import { defineScenario } from "./define.js";

export default defineScenario({
  scenario: {
    name: "churn-scripted",
    description: "40 clients, heterogeneous devices; 30% killed at round 5, latency doubled at round 8",
    seed: 21,
    dataset: { name: "mnist" },
    partition: { kind: "iid" },
    model: "mnist-2nn",
    clients: 40,
    clientsPerRound: 10,
    overSelection: 0.2,
    minFitClients: 8,
    rounds: 12,
    roundDeadlineSeconds: 60,
    fit: { epochs: 1, batchSize: 10, learningRate: 0.05 },
    heterogeneity: {
      speed: { kind: "lognormal", median: 0.8, sigma: 0.4 },
      latencyMs: { kind: "uniform", min: 20, max: 300 },
      bandwidthMbps: {
        kind: "tiers",
        tiers: [
          { fraction: 0.3, value: 5 },
          { fraction: 0.7, value: 50 },
        ],
      },
    },
    expect: { finalAccuracy: { gte: 0.85 }, cancelled: { gte: 1 } },
  },
  hooks: {
    async onRoundStart(ctx) {
      if (ctx.round === 5) {
        const gone = await ctx.kill({ fraction: 0.3 });
        ctx.log(`killed clients ${gone.join(", ")}`);
      }
      if (ctx.round === 8) await ctx.setNetworkScale(2);
    },
    onRoundEnd(ctx, record) {
      if (record.round > 3 && record.accuracy < 0.2) ctx.stop(`accuracy collapsed to ${record.accuracy}`);
    },
  },
});
