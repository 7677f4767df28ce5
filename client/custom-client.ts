import type * as tf from "@tensorflow/tfjs";
import type { ClientDefinition } from "../common/client-app.js";
import { ErrorCode, FedsimError } from "../common/errors.js";
import { readFlatDelta } from "../common/models/tf-weights.js";
import { customMetricsSchema, formatZodIssues } from "../common/protocol.js";
import type { FitConfig } from "../common/strategy/strategy.js";
import {
  type EvalResult,
  evaluate,
  type TrainData,
  type TrainOptions,
  trainLocal,
} from "../common/train/trainer.js";
import type { FlatWeights } from "../common/weights.js";
import type { LocalFitInput, LocalFitOutput } from "./local-fit-types.js";

/** The trainer's options from a round's config. */
export function trainOptions(config: FitConfig, seed: number): TrainOptions {
  return {
    epochs: config.epochs,
    batchSize: config.batchSize,
    learningRate: config.learningRate,
    seed,
    ...(config.proximalMu !== undefined ? { proximalMu: config.proximalMu } : {}),
    ...(config.maxSteps !== undefined ? { maxSteps: config.maxSteps } : {}),
  };
}

/** The metrics with a field of their own in a report; the rest travel as `custom`. */
const BUILT_IN_METRICS = new Set(["loss", "accuracy", "steps", "epochsCompleted", "seconds"]);

/**
 * A fit through custom client logic, on the workbench's model holding the global weights. The
 * result is checked here, on the client, so a mistake in user code is reported with the client's
 * name instead of as a refused update at the coordinator.
 */
export async function customFit(
  client: ClientDefinition,
  model: tf.LayersModel,
  data: TrainData,
  input: LocalFitInput,
  out: Float32Array,
): Promise<LocalFitOutput> {
  const userFit = client.fit;
  if (!userFit) throw new FedsimError(ErrorCode.INTERNAL, `client "${client.name}" has no fit`);
  const started = performance.now();
  const global = input.weights;
  const result = await userFit({
    round: input.round ?? 0,
    config: input.config,
    seed: input.seed,
    weights: global.values,
    specs: global.specs,
    model,
    data,
    train: (config) => trainLocal(model, data, trainOptions({ ...input.config, ...config }, input.seed)),
  });
  const where = `client "${client.name}": fit`;
  if (!Number.isInteger(result?.numExamples) || result.numExamples < 1) {
    throw new FedsimError(
      ErrorCode.INVALID_CONFIG,
      `${where} must return numExamples, a positive integer; got ${result?.numExamples}`,
    );
  }
  let delta: Float32Array;
  if (result.weights !== undefined) {
    if (!(result.weights instanceof Float32Array) || result.weights.length !== global.values.length) {
      throw new FedsimError(
        ErrorCode.BAD_SHAPE,
        `${where} returned weights of length ${result.weights?.length}; the trainable tensors hold ${global.values.length} values`,
      );
    }
    delta = out;
    for (let i = 0; i < delta.length; i++) delta[i] = result.weights[i] - global.values[i];
  } else {
    // Refuses (BAD_SHAPE) if the model's trainable tensors are not the ones the coordinator sent.
    delta = (await readFlatDelta(model, global, out)).values;
  }
  const metrics = splitMetrics(result.metrics ?? {}, where);
  return {
    specs: global.specs,
    delta,
    numExamples: result.numExamples,
    metrics: {
      loss: metrics.builtIn.loss ?? 0,
      accuracy: metrics.builtIn.accuracy ?? 0,
      steps: Math.max(0, Math.round(metrics.builtIn.steps ?? 0)),
      // Custom logic that says nothing about epochs did the work it was asked for.
      epochsCompleted: metrics.builtIn.epochsCompleted ?? input.config.epochs,
      seconds: (performance.now() - started) / 1000,
      ...(metrics.custom ? { custom: metrics.custom } : {}),
    },
  };
}

/** Federated evaluation through custom client logic. */
export async function customEvaluate(
  client: ClientDefinition,
  model: tf.LayersModel,
  data: TrainData,
  weights: FlatWeights,
  round: number,
): Promise<EvalResult> {
  const run = client.evaluate;
  if (!run) throw new FedsimError(ErrorCode.INTERNAL, `client "${client.name}" has no evaluate`);
  const result = await run({
    round,
    weights: weights.values,
    specs: weights.specs,
    model,
    data,
    evaluate: async () => evaluate(model, data),
  });
  const where = `client "${client.name}": evaluate`;
  if (!Number.isInteger(result?.numExamples) || result.numExamples < 0) {
    throw new FedsimError(ErrorCode.INVALID_CONFIG, `${where} must return numExamples, an integer ≥ 0`);
  }
  const accuracy = result.accuracy ?? 0;
  if (!(Number.isFinite(result.loss) && result.loss >= 0 && accuracy >= 0 && accuracy <= 1)) {
    throw new FedsimError(
      ErrorCode.INVALID_CONFIG,
      `${where} must return a finite loss ≥ 0 and an accuracy in [0, 1]; got ${result.loss} and ${accuracy}`,
    );
  }
  const metrics = result.metrics ? checkCustom(result.metrics, where) : undefined;
  return {
    loss: result.loss,
    accuracy,
    numExamples: result.numExamples,
    ...(metrics ? { metrics } : {}),
  };
}

function splitMetrics(
  metrics: Record<string, number>,
  where: string,
): { builtIn: Partial<Record<string, number>>; custom?: Record<string, number> } {
  const builtIn: Record<string, number> = {};
  const custom: Record<string, number> = {};
  for (const [name, value] of Object.entries(metrics)) {
    if (!Number.isFinite(value)) {
      throw new FedsimError(
        ErrorCode.NON_FINITE,
        `${where}: metric "${name}" is ${value}, not a finite number`,
      );
    }
    if (BUILT_IN_METRICS.has(name)) builtIn[name] = value;
    else custom[name] = value;
  }
  return Object.keys(custom).length > 0 ? { builtIn, custom: checkCustom(custom, where) } : { builtIn };
}

function checkCustom(metrics: Record<string, number>, where: string): Record<string, number> {
  const parsed = customMetricsSchema.safeParse(metrics);
  if (!parsed.success) {
    throw new FedsimError(
      ErrorCode.INVALID_CONFIG,
      `${where}: metrics: ${formatZodIssues(parsed.error).join("; ")}`,
    );
  }
  return parsed.data;
}
