import { describeError } from "../common/errors.js";
import { createRng, deriveSeed, sampleWithoutReplacement } from "../common/rng.js";
import type { MetricsResult } from "../common/strategy/metrics.js";
import { type FlatWeights, selectTensors } from "../common/weights.js";
import type { ClientDirectory } from "./client-proxy.js";
import type { FederatedEvaluation } from "./round-record.js";

export interface FederatedEvaluationSpec {
  /** The fraction of the connected clients asked. */
  fraction: number;
  timeoutMs: number;
}

/**
 * Asks a seeded sample of the connected clients to score the global model on their own data.
 * Its own RNG stream, so turning it on does not change which clients train.
 */
export async function evaluateFederated(options: {
  round: number;
  spec: FederatedEvaluationSpec;
  directory: ClientDirectory;
  seed: number;
  model: FlatWeights;
  trainable: ReadonlySet<string>;
  /** The strategy's evaluate-metrics aggregation (Strategy.aggregateEvaluate), if it has one. */
  aggregate?: (results: readonly MetricsResult[]) => Record<string, number>;
  log: (line: string) => void;
}): Promise<FederatedEvaluation> {
  const { round, spec, model, trainable } = options;
  const connected = options.directory
    .connected()
    .filter((c) => c.evaluate !== undefined)
    .sort((a, b) => (a.id < b.id ? -1 : 1));
  const count = Math.min(connected.length, Math.max(1, Math.ceil(spec.fraction * connected.length)));
  const rng = createRng(deriveSeed(options.seed, "federated-evaluation", round));
  const asked = sampleWithoutReplacement(connected.length, count, rng).map((i) => connected[i]);
  const frozenNames = new Set(model.specs.map((s) => s.name).filter((n) => !trainable.has(n)));
  const request = {
    round,
    weights: selectTensors(model, trainable),
    frozen: frozenNames.size > 0 ? selectTensors(model, frozenNames) : null,
  };
  const replies = await Promise.all(
    asked.map((c) =>
      (c.evaluate?.(request, spec.timeoutMs) ?? Promise.reject(new Error("no evaluate"))).catch((err) => {
        options.log(`round ${round}: federated evaluation by ${c.id} failed: ${describeError(err)}`);
        return null;
      }),
    ),
  );
  const answered = replies.filter((r) => r !== null && r.numExamples > 0);
  const examples = answered.reduce((n, r) => n + (r?.numExamples ?? 0), 0);
  const mean = (value: (r: { loss: number; accuracy: number; numExamples: number }) => number) =>
    examples > 0 ? answered.reduce((s, r) => s + (r ? value(r) * r.numExamples : 0), 0) / examples : 0;
  const results = replies.flatMap((r, i) =>
    r !== null && r.numExamples > 0
      ? [
          {
            clientId: asked[i].id,
            numExamples: r.numExamples,
            metrics: { ...r.metrics, loss: r.loss, accuracy: r.accuracy },
          },
        ]
      : [],
  );
  const metrics = options.aggregate?.(results) ?? {};
  return {
    accuracy: mean((r) => r.accuracy),
    loss: mean((r) => r.loss),
    clients: answered.length,
    examples,
    failed: replies.filter((r) => r === null).length,
    ...(Object.keys(metrics).length > 0 ? { metrics } : {}),
  };
}
