import { sealedBytes } from "../common/crypto/envelope.js";
import type { Identity } from "../common/crypto/identity.js";
import type { NormalSource } from "../common/dp/noise.js";
import { ErrorCode, FedsimError } from "../common/errors.js";
import type { FitInstructions, FitResultMessage, ModelDescriptor, TrainMetrics } from "../common/protocol.js";
import { deriveSeed } from "../common/rng.js";
import type { TrainData } from "../common/train/trainer.js";
import type { FlatWeights } from "../common/weights.js";
import { approximateBytes, buildFitResult, privatizeDelta, type RawUpdate } from "./update-pipeline.js";
import type { ModelWorkbench } from "./workbench.js";

/**
 * Scenario roles change what a client does without the coordinator being able to tell. The delay
 * hooks return milliseconds to wait at their point of the fit, in this order: download, train,
 * afterTrain, upload.
 */
export interface ClientBehaviour {
  /** Wait after a fit request arrives, before training (a slow downlink); gets the payload bytes. */
  downloadDelayMs?: (round: number, bytesIn: number) => number;
  /** Wait after training that took `trainSeconds` on this machine (a slow device). */
  afterTrainDelayMs?: (round: number, trainSeconds: number) => number;
  /** Wait before sending the update (a slow uplink); gets the update's payload bytes. */
  delayMs?: (round: number, updateBytes: number) => number;
  /** Rewrites the raw update before privacy steps (attackers). */
  transformUpdate?: (update: RawUpdate, round: number) => RawUpdate;
  /** Drop the connection instead of answering this round. */
  dropInRound?: (round: number) => boolean;
  /** Train fewer epochs than asked (stragglers); the metrics report the epochs actually done. */
  epochsForRound?: (round: number, requested: number) => number;
}

/** What one fit needs besides its instructions: the client's data, model and roles. */
export interface LocalFitContext {
  model: ModelDescriptor;
  workbench: ModelWorkbench;
  /** A function is called only when the shared model is free for this fit (see ModelWorkbench.fit). */
  data: TrainData | (() => TrainData);
  /** The client's own seed: training is seeded by it and the round, not by the client's id. */
  seed: number;
  /**
   * How many fits this client already started on the same round (FitRepeats). An asynchronous
   * coordinator can send a second fit on the same model version; the same seed would give the
   * identical update, counted twice. 0 (a synchronous round's only fit) keeps the plain seed.
   */
  repeat?: number;
  behaviour?: ClientBehaviour;
  sleep: (ms: number) => Promise<void>;
  noise: NormalSource;
  identity?: Identity;
  maxPayloadBytes: number;
  /** Why this fit should stop now, if it should (cancelled, or the connection is gone). */
  abandoned: () => string | null;
  /** Secure aggregation: masks the encoded [w·Δ, w] vector (ClientSecAgg.mask). */
  secagg?: (fit: SecAggFit, update: RawUpdate, delta: Float32Array) => FitResultMessage;
  log: (line: string) => void;
}

export interface SecAggFit {
  round: number;
  nonce: string;
  secagg: NonNullable<FitInstructions["secagg"]>;
}

/** The instructions, with the weights already decoded. */
export type LocalFitInstructions = Omit<FitInstructions, "weights" | "frozen"> & {
  weights: FlatWeights;
  frozen?: FlatWeights;
  /** Payload bytes the request carried (the slow-downlink delay reads them). */
  bytesIn: number;
};

export interface LocalFitResult {
  message: FitResultMessage;
  /** The workbench's delta array, to give back (recycleDelta) once the upload is acknowledged. */
  delta: Float32Array;
  /** What the training did, for the node's own log: sent to the coordinator only in unprotected rounds. */
  local: { numExamples: number; metrics: TrainMetrics; bytesUp: number };
}

/** The seed of one local training: the client's seed and the round, and from a repeat on, its count. */
export function trainingSeed(seed: number, round: number, repeat: number): number {
  return repeat === 0 ? deriveSeed(seed, round) : deriveSeed(seed, round, "repeat", repeat);
}

/**
 * Counts the fits a client starts per round, keeping only the latest round: fits only ever come
 * for the coordinator's current round (or version), so older counts are never needed again.
 */
export class FitRepeats {
  private round = -1;
  private readonly counts = new Map<number, number>();

  /** The number of earlier fits `client` started on `round`, counting this one for next time. */
  next(round: number, client = 0): number {
    if (round !== this.round) {
      this.round = round;
      this.counts.clear();
    }
    const seen = this.counts.get(client) ?? 0;
    this.counts.set(client, seen + 1);
    return seen;
  }
}

/**
 * One fit as a client node runs it: scripted delays, local training, the update pipeline (attack
 * rewrite, clip, noise, seal or mask) and the size check. Null when the fit was abandoned on the
 * way (its reason is logged); throws a FedsimError the caller reports as fitError.
 */
export async function runLocalFit(
  ins: LocalFitInstructions,
  ctx: LocalFitContext,
): Promise<LocalFitResult | null> {
  const behaviour = ctx.behaviour;
  const download = behaviour?.downloadDelayMs?.(ins.round, ins.bytesIn) ?? 0;
  if (download > 0) await ctx.sleep(download);
  const early = ctx.abandoned();
  if (early) {
    ctx.log(`round ${ins.round}: not training: ${early}`);
    return null;
  }
  const epochs = behaviour?.epochsForRound?.(ins.round, ins.config.epochs) ?? ins.config.epochs;
  const trained = await ctx.workbench.fit(ctx.model, ctx.data, {
    round: ins.round,
    weights: ins.weights,
    ...(ins.frozen ? { frozen: ins.frozen } : {}),
    config: { ...ins.config, epochs },
    seed: trainingSeed(ctx.seed, ins.round, ctx.repeat ?? 0),
    abandoned: ctx.abandoned,
  });
  // The training time itself, measured by the trainer: queueing for the shared workbench excluded.
  const afterTrain = behaviour?.afterTrainDelayMs?.(ins.round, trained.metrics.seconds) ?? 0;
  if (afterTrain > 0) await ctx.sleep(afterTrain);
  let update: RawUpdate = trained;
  if (behaviour?.transformUpdate) update = behaviour.transformUpdate(update, ins.round);
  const privatized = privatizeDelta(update.delta, ins.dp, ctx.noise);
  let message: FitResultMessage;
  if (ins.secagg) {
    if (!ctx.secagg)
      throw new FedsimError(ErrorCode.INCOMPATIBLE_OPTIONS, "this client cannot do secure aggregation");
    message = ctx.secagg(
      { round: ins.round, nonce: ins.nonce, secagg: ins.secagg },
      update,
      privatized.delta,
    );
  } else {
    message = await buildFitResult(ins, update, privatized, ctx.identity);
  }
  const size = approximateBytes(message);
  if (size > ctx.maxPayloadBytes) {
    throw new FedsimError(
      ErrorCode.PAYLOAD_TOO_LARGE,
      `update is ~${size} bytes, over the coordinator's limit of ${ctx.maxPayloadBytes}`,
    );
  }
  const upload = behaviour?.delayMs?.(ins.round, payloadBytes(message)) ?? 0;
  if (upload > 0) await ctx.sleep(upload);
  const late = ctx.abandoned();
  if (late) {
    ctx.log(`round ${ins.round}: update not sent: ${late}`);
    return null;
  }
  return {
    message,
    delta: trained.delta,
    local: { numExamples: update.numExamples, metrics: update.metrics, bytesUp: payloadBytes(message) },
  };
}

/** The bytes of the update itself, whichever form it travels in. */
function payloadBytes(message: FitResultMessage): number {
  return (
    message.update?.delta.data.byteLength ??
    (message.envelope ? sealedBytes(message.envelope) : undefined) ??
    message.secagg?.masked.masked.byteLength ??
    0
  );
}
