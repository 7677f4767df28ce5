import { sealedBytes, sealUpdate } from "../common/crypto/envelope.js";
import type { Identity } from "../common/crypto/identity.js";
import { isProtectedRound } from "../common/disclosure.js";
import { clipToNorm } from "../common/dp/clip.js";
import { addGaussianNoise, type NormalSource } from "../common/dp/noise.js";
import { ErrorCode, FedsimError } from "../common/errors.js";
import type {
  DpClientConfig,
  FitInstructions,
  FitResultMessage,
  PlainUpdate,
  TrainMetrics,
} from "../common/protocol.js";
import { encodePlainUpdate } from "../common/update-codec.js";
import { float32BytesView, type TensorSpec } from "../common/weights.js";

export interface RawUpdate {
  specs: TensorSpec[];
  delta: Float32Array;
  numExamples: number;
  metrics: TrainMetrics;
}

export interface PrivatizeResult {
  delta: Float32Array;
  clippedBit?: 0 | 1;
  norm: number;
}

/**
 * The client-side privacy steps, in order: clip the whole update to L2 norm S, then add the
 * client's share of Gaussian noise (0 under central DP). The bit for adaptive clipping is
 * computed from the norm before clipping, as in Andrew et al. 2021.
 */
export function privatizeDelta(
  delta: Float32Array,
  dp: DpClientConfig | undefined,
  noise: NormalSource,
): PrivatizeResult {
  if (!dp) return { delta, norm: Number.NaN };
  const clip = clipToNorm(delta, dp.clipNorm);
  if (dp.noiseStd > 0) addGaussianNoise(delta, dp.noiseStd, noise);
  return {
    delta,
    norm: clip.norm,
    ...(dp.reportClippedBit ? { clippedBit: clip.norm <= dp.clipNorm ? (1 as const) : (0 as const) } : {}),
  };
}

/**
 * Builds the fitResult message: the update in the clear, or sealed to the round's key and signed
 * when the coordinator asked for an envelope. Under DP the example count and the training
 * metrics stay here (common/disclosure.ts).
 */
export async function buildFitResult(
  ins: Pick<FitInstructions, "round" | "nonce" | "envelopeKey" | "dp" | "secagg">,
  update: RawUpdate,
  privatized: PrivatizeResult,
  identity: Identity | undefined,
): Promise<FitResultMessage> {
  const report = isProtectedRound(ins) ? {} : { numExamples: update.numExamples, metrics: update.metrics };
  const plain: PlainUpdate = {
    ...report,
    // No copy: the delta is this fit's own array and nothing touches it after it is sent.
    delta: { specs: update.specs, data: float32BytesView(privatized.delta) },
    ...(privatized.clippedBit !== undefined ? { clippedBit: privatized.clippedBit } : {}),
  };
  if (!ins.envelopeKey) return { round: ins.round, nonce: ins.nonce, update: plain };
  if (!identity) {
    throw new FedsimError(
      ErrorCode.UNAUTHORIZED,
      "the coordinator requires sealed updates but this client has no identity",
    );
  }
  const envelope = await sealUpdate({
    round: ins.round,
    serverPublicKey: ins.envelopeKey,
    identity,
    plaintext: encodePlainUpdate(plain),
  });
  return { round: ins.round, nonce: ins.nonce, envelope };
}

/** Rough size of a message on the wire, to refuse oversized sends before Socket.IO drops them. */
export function approximateBytes(message: FitResultMessage): number {
  const binary =
    message.update?.delta.data.byteLength ?? (message.envelope ? sealedBytes(message.envelope) : 0);
  return binary + 4096 + (message.update?.delta.specs.length ?? 0) * 64;
}
