/**
 * Reading tensor values back to JavaScript on any backend. The webgpu backend cannot read synchronously
 * in Node (tfjs-backend-webgpu's dataSync reaches for OffscreenCanvas), so the training, evaluation and
 * update paths read through these, which wait for the GPU only where they must.
 */
import * as tf from "@tensorflow/tfjs";
import { ErrorCode, FedsimError } from "../errors.js";
import { WEBGPU_BACKEND } from "./webgpu.js";

/** Whether the active backend can hand out a tensor's values synchronously. */
export function readsSynchronously(): boolean {
  return tf.getBackend() !== WEBGPU_BACKEND;
}

/** Throws a clear error where a synchronous read would fail deep inside tfjs. */
export function assertSynchronousReads(what: string): void {
  if (!readsSynchronously()) {
    throw new FedsimError(
      ErrorCode.BACKEND_UNAVAILABLE,
      `${what} reads tensors synchronously, which the ${tf.getBackend()} backend cannot do; use its asynchronous variant`,
    );
  }
}

/**
 * A copy of a float32 tensor's values, owned by the caller. Synchronous backends read at once; webgpu
 * waits for the GPU to finish the work queued before the read.
 */
export async function readFloats(tensor: tf.Tensor): Promise<Float32Array> {
  if (readsSynchronously()) return (tensor.dataSync() as Float32Array).slice();
  // Copied: the backend keeps the array it returns as the tensor's cached values.
  return ((await tensor.data()) as Float32Array).slice();
}
