import * as tf from "@tensorflow/tfjs";
import type { ClientDefinition } from "../common/client-app.js";
import { ErrorCode, FedsimError } from "../common/errors.js";
import { Float32FreeList } from "../common/float32-free-list.js";
import { readFlatDelta, setFlatWeights, setTrainableLayers } from "../common/models/tf-weights.js";
import type { ModelDescriptor } from "../common/protocol.js";
import { withModelClasses } from "../common/train/data.js";
import { type EvalResult, evaluate, type TrainData, trainLocal } from "../common/train/trainer.js";
import { type FlatWeights, layerOfTensor } from "../common/weights.js";
import { customEvaluate, customFit, trainOptions } from "./custom-client.js";
import type { LocalFitInput, LocalFitOutput } from "./local-fit-types.js";

/** Spare deltas a workbench keeps: a pool process's clients of one round, for a 1.7M-parameter model. */
const SPARE_DELTA_BYTES = 128 * 1024 * 1024;

export interface WorkbenchOptions {
  /**
   * Custom client logic (`defineClient`): its fit and evaluate replace fedsim's own training and
   * evaluation for every client this workbench serves, virtual or real (client/custom-client.ts).
   */
  client?: ClientDefinition;
}

/**
 * One tfjs model per architecture per process, shared by every virtual client the process hosts.
 * The backends here run one op at a time, so clients in one process train one after another
 * (a mutex); parallelism comes from running several processes.
 */
export class ModelWorkbench {
  private readonly client: ClientDefinition | undefined;
  private readonly models = new Map<string, Promise<tf.LayersModel>>();
  private queue: Promise<unknown> = Promise.resolve();
  /** Deltas given back after their upload, for the next fits (see recycleDelta). */
  private readonly spareDeltas = new Float32FreeList(SPARE_DELTA_BYTES);

  constructor(options: WorkbenchOptions = {}) {
    this.client = options.client;
  }

  /** Runs `task` when no other task on this workbench is running. */
  exclusive<T>(task: () => Promise<T>): Promise<T> {
    const result = this.queue.then(task, task);
    this.queue = result.catch(() => undefined);
    return result;
  }

  model(descriptor: ModelDescriptor): Promise<tf.LayersModel> {
    const key = JSON.stringify(descriptor.topology);
    let model = this.models.get(key);
    if (!model) {
      model = tf.models.modelFromJSON({ modelTopology: descriptor.topology } as tf.io.ModelJSON as never);
      this.models.set(key, model);
    }
    return model;
  }

  /**
   * Trains on `data`; a function is called only once this fit's turn comes, so that clients
   * queued behind others hold no copy of their data meanwhile (virtual clients materialise it).
   */
  async fit(
    descriptor: ModelDescriptor,
    data: TrainData | (() => TrainData),
    input: LocalFitInput,
  ): Promise<LocalFitOutput> {
    return this.exclusive(async () => {
      const abandoned = input.abandoned?.();
      if (abandoned) throw new FedsimError(ErrorCode.CANCELLED, `not training: ${abandoned}`);
      const model = await this.model(descriptor);
      const examples = withModelClasses(model, typeof data === "function" ? data() : data);
      // Shared, not copied: received weights are never written to (training makes new tensors).
      if (input.frozen) setFlatWeights(model, input.frozen, { shareValues: true });
      const trainableLayers = [...new Set(input.weights.specs.map((s) => layerOfTensor(s.name)))];
      setTrainableLayers(model, trainableLayers);
      setFlatWeights(model, input.weights, { shareValues: true });
      if (this.client?.fit) {
        return customFit(
          this.client,
          model,
          examples,
          input,
          this.spareDeltas.take(input.weights.values.length),
        );
      }
      const result = await trainLocal(model, examples, trainOptions(input.config, input.seed));
      // Refuses (BAD_SHAPE) if the trained tensors are not the ones the coordinator sent.
      const delta = await readFlatDelta(
        model,
        input.weights,
        this.spareDeltas.take(input.weights.values.length),
      );
      return {
        specs: delta.specs,
        delta: delta.values,
        numExamples: result.numExamples,
        metrics: {
          loss: result.loss,
          accuracy: result.accuracy,
          steps: result.steps,
          epochsCompleted: result.epochsCompleted,
          seconds: result.seconds,
        },
      };
    });
  }

  /**
   * Gives back a delta that `fit` returned once nothing reads it any more (its upload was acknowledged:
   * the coordinator has every byte), so a later fit writes into it instead of a fresh array.
   */
  recycleDelta(delta: Float32Array): void {
    this.spareDeltas.give(delta);
  }

  /** Spare delta arrays kept for the next fits, with the counts of fresh and reused ones (for tests). */
  get spareDeltaStats(): { bytes: number; allocated: number; reused: number } {
    return { bytes: this.spareDeltas.bytes, ...this.spareDeltas.stats };
  }

  /** Scores the given global weights on `data` (federated evaluation). */
  async evaluate(
    descriptor: ModelDescriptor,
    data: TrainData,
    weights: FlatWeights,
    frozen?: FlatWeights,
    round = 0,
  ): Promise<EvalResult> {
    return this.exclusive(async () => {
      const model = await this.model(descriptor);
      if (frozen) setFlatWeights(model, frozen);
      setFlatWeights(model, weights);
      const examples = withModelClasses(model, data);
      if (this.client?.evaluate) return customEvaluate(this.client, model, examples, weights, round);
      return evaluate(model, examples);
    });
  }

  dispose(): void {
    for (const m of this.models.values()) void m.then((model) => model.dispose());
    this.models.clear();
  }
}
