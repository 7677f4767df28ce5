import { createHash } from "node:crypto";
import { z } from "zod";
import { ErrorCode, FedsimError } from "./errors.js";
import {
  bytesSchema,
  dpClientConfigSchema,
  fitConfigSchema,
  fitErrorSchema,
  fitResultSchema,
  wireWeightsSchema,
} from "./protocol.js";

/**
 * Pool sessions (docs/PROTOCOL.md §12): one connection that carries many virtual clients. The
 * pool authenticates once, then names its clients by index; the coordinator derives each one's id
 * from the pool's proven key and the index, so a pool can only ever speak for ids of its own.
 */

/** How many weight versions each side keeps for a session; both evict the oldest beyond it. */
export const POOL_WEIGHT_VERSIONS = 4;

/** Indices one join or leave may carry (the scenario schema's client limit). */
export const MAX_POOL_BATCH = 100_000;

const index = z.number().int().nonnegative().max(0x7fffffff);
const nonce = z.string().min(8).max(64);

/** Virtual client indices as little-endian int32 bytes (a 100k-client join is one 400 KB attachment). */
export const poolIndicesSchema = z.object({ indices: bytesSchema });
export type PoolIndicesMessage = z.infer<typeof poolIndicesSchema>;

/**
 * C→S: take clients offline; with `release`, also hand them back, so another session of the
 * same key may host them (a remote pool's clients moving to another pool when the run rebalances).
 */
export const poolLeaveSchema = poolIndicesSchema.extend({ release: z.boolean().optional() });
export type PoolLeaveMessage = z.infer<typeof poolLeaveSchema>;

/** S→C: global weights the session's coming fit and evaluate requests refer to by version. */
export const poolWeightsSchema = z.object({
  version: z.number().int().positive(),
  weights: wireWeightsSchema,
  /** Frozen tensors, sent with the first version of a session only. */
  frozen: wireWeightsSchema.optional(),
});
export type PoolWeights = z.infer<typeof poolWeightsSchema>;

/** S→C: train virtual client `index` on weights `version` (what `fit` is for a lone client). */
export const poolFitSchema = z.object({
  index,
  round: z.number().int().nonnegative(),
  nonce,
  deadlineMs: z.number().int().positive(),
  version: z.number().int().positive(),
  config: fitConfigSchema,
  dp: dpClientConfigSchema.optional(),
});
export type PoolFit = z.infer<typeof poolFitSchema>;

/** S→C: score weights `version` on virtual client `index`'s held-out data (acked). */
export const poolEvaluateSchema = z.object({
  index,
  round: z.number().int().nonnegative(),
  version: z.number().int().positive(),
});
export type PoolEvaluate = z.infer<typeof poolEvaluateSchema>;

export const poolCancelSchema = z.object({ index, round: z.number().int(), nonce, reason: z.string() });
export type PoolCancel = z.infer<typeof poolCancelSchema>;

/** C→S: one virtual client's answer to a poolFit (a fitResult plus the index). */
export const poolFitResultSchema = fitResultSchema.extend({ index });
export type PoolFitResult = z.infer<typeof poolFitResultSchema>;

export const poolFitErrorSchema = fitErrorSchema.extend({ index });
export type PoolFitError = z.infer<typeof poolFitErrorSchema>;

/**
 * The id the coordinator gives a pool's virtual client: "v-" + 16 hex characters of
 * SHA-256("fedsim-virtual-v1\0" ‖ pool public key ‖ index as u32 big-endian). It depends on the
 * key and the index only, so the same clients get the same ids however many pools host them.
 */
export function virtualClientId(poolPublicKey: Uint8Array, clientIndex: number): string {
  const indexBytes = Buffer.alloc(4);
  indexBytes.writeUInt32BE(clientIndex);
  const digest = createHash("sha256")
    .update("fedsim-virtual-v1\0")
    .update(poolPublicKey)
    .update(indexBytes)
    .digest("hex");
  return `v-${digest.slice(0, 16)}`;
}

/** Reads a join/leave's indices; BAD_PAYLOAD unless whole int32s, at most MAX_POOL_BATCH, none negative. */
export function decodeIndices(bytes: Uint8Array): Int32Array {
  if (bytes.byteLength % 4 !== 0 || bytes.byteLength / 4 > MAX_POOL_BATCH) {
    throw new FedsimError(
      ErrorCode.BAD_PAYLOAD,
      `indices must be little-endian int32s, at most ${MAX_POOL_BATCH}; got ${bytes.byteLength} bytes`,
    );
  }
  // Copied: an attachment may sit at an offset that is not a multiple of 4.
  const out = new Int32Array(bytes.byteLength / 4);
  new Uint8Array(out.buffer).set(bytes);
  for (const i of out) {
    if (i < 0) throw new FedsimError(ErrorCode.BAD_PAYLOAD, `index ${i} is negative`);
  }
  return out;
}

export function encodeIndices(indices: ArrayLike<number>): Uint8Array {
  return new Uint8Array(Int32Array.from(indices).buffer);
}
