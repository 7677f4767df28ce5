/**
 * The `native` TensorFlow.js backend: the pure-JS cpu backend (its class, so every cpu kernel works on it
 * unchanged) plus a pool of output arrays for fedsim's native kernels.
 *
 * Why a pool: every op allocates a fresh output, and a fresh multi-megabyte Float32Array costs about
 * 0.5 ms because its zeroed pages are mapped anew (MEASURED.md). Training runs the same shapes every step,
 * so arrays a native kernel allocated are handed back when their tensor is disposed and reused by the next
 * kernel that needs that length. The optimiser's per-step allocations are recycled the same way.
 *
 * The cpu backend stores arrays by reference and readSync returns the stored array itself, so an array may
 * escape: a user who called dataSync(), a cpu kernel that returned a view (slice) or the same array under
 * another id. Any array seen in such a role is "pinned" and never recycled; only arrays this pool issued,
 * bound to exactly one data id and never read out, go back to the pool.
 */
import * as tf from "@tensorflow/tfjs";
import { ErrorCode, FedsimError } from "../errors.js";

export const NATIVE_BACKEND = "native";

type ArrayState = "issued" | "bound" | "pinned" | "free";

interface PooledArray {
  array: Float32Array;
  state: ArrayState;
}

/** Below this length allocation is cheap and pooling would only add bookkeeping. */
const MIN_POOLED_LENGTH = 4096;
/** Free arrays kept at most; a training step's working set is far smaller. */
const MAX_FREE_BYTES = 512 * 1024 * 1024;

export class Float32Pool {
  private readonly freeByLength = new Map<number, Float32Array[]>();
  private readonly owned = new WeakMap<ArrayBufferLike, PooledArray>();
  private freeBytes = 0;
  /** Counters for tests and benchmarks. */
  readonly stats = { allocated: 0, reused: 0, pinned: 0 };

  /** An array of `length` floats with arbitrary contents: the caller must write every element. */
  allocate(length: number): Float32Array {
    if (length < MIN_POOLED_LENGTH) return new Float32Array(length);
    const free = this.freeByLength.get(length);
    const reused = free?.pop();
    if (reused !== undefined) {
      this.freeBytes -= reused.byteLength;
      const entry = this.owned.get(reused.buffer);
      if (entry !== undefined) entry.state = "issued";
      this.stats.reused++;
      return reused;
    }
    const array = new Float32Array(length);
    this.owned.set(array.buffer, { array, state: "issued" });
    this.stats.allocated++;
    return array;
  }

  /** A data id now holds `values`: binds a freshly issued array, pins one that is already held or viewed. */
  noteStored(values: unknown): void {
    const entry = this.entryOf(values);
    if (entry === undefined) return;
    if (entry.array === values && entry.state === "issued") entry.state = "bound";
    else this.pin(entry);
  }

  /** The array left the backend (dataSync, data()): it may be held by the caller forever. */
  noteRead(values: unknown): void {
    const entry = this.entryOf(values);
    if (entry !== undefined) this.pin(entry);
  }

  /**
   * True when `values` is an array this pool issued that is bound to one data id and was never read
   * out or viewed: nobody else holds it, so a kernel may write it in place (the in-place SGD step).
   */
  isExclusive(values: unknown): boolean {
    const entry = this.entryOf(values);
    return entry !== undefined && entry.array === values && entry.state === "bound";
  }

  /** The data id holding `values` was freed. */
  noteReleased(values: unknown): void {
    const entry = this.entryOf(values);
    if (entry === undefined || entry.array !== values || entry.state !== "bound") return;
    if (this.freeBytes + entry.array.byteLength > MAX_FREE_BYTES) {
      this.pin(entry);
      return;
    }
    entry.state = "free";
    this.freeBytes += entry.array.byteLength;
    const list = this.freeByLength.get(entry.array.length);
    if (list === undefined) this.freeByLength.set(entry.array.length, [entry.array]);
    else list.push(entry.array);
  }

  /** Drops every free array (they are garbage collected). */
  clear(): void {
    this.freeByLength.clear();
    this.freeBytes = 0;
  }

  private entryOf(values: unknown): PooledArray | undefined {
    if (!ArrayBuffer.isView(values)) return undefined;
    return this.owned.get(values.buffer);
  }

  private pin(entry: PooledArray): void {
    if (entry.state === "pinned") return;
    entry.state = "pinned";
    this.owned.delete(entry.array.buffer);
    this.stats.pinned++;
  }
}

interface TensorData {
  values: unknown;
  refCount: number;
}

/** The parts of MathBackendCPU that fedsim's native kernels use. */
export interface CpuBackendLike extends tf.KernelBackend {
  data: { get(dataId: tf.DataId): TensorData; has(dataId: tf.DataId): boolean };
  makeTensorInfo(shape: number[], dtype: tf.DataType, values?: tf.backend_util.BackendValues): tf.TensorInfo;
  write(values: tf.backend_util.BackendValues, shape: number[], dtype: tf.DataType): tf.DataId;
  move(
    dataId: tf.DataId,
    values: tf.backend_util.BackendValues,
    shape: number[],
    dtype: tf.DataType,
    refCount: number,
  ): void;
  readSync(dataId: tf.DataId): tf.backend_util.BackendValues;
  disposeData(dataId: tf.DataId, force?: boolean): boolean;
}

/** The backend fedsim's native kernels receive. */
export interface NativeBackend extends CpuBackendLike {
  readonly pool: Float32Pool;
  /** The Float32Array behind a float32 tensor, without copying. */
  floats(info: tf.TensorInfo): Float32Array;
  /** Wraps an array from `pool.allocate` (or any Float32Array) as an output tensor. */
  output(shape: number[], values: Float32Array): tf.TensorInfo;
}

type CpuBackendClass = new () => CpuBackendLike;

/**
 * A float32 tensor's values without a copy, for a read that ends before the next tfjs call. On the native
 * backend this does not pin the array (as dataSync would), so the pool can still recycle it.
 */
export function peekFloats(tensor: tf.Tensor): Float32Array {
  if (tf.getBackend() === NATIVE_BACKEND) return (tf.backend() as NativeBackend).floats(tensor);
  return tensor.dataSync() as Float32Array;
}

/** The cpu backend's class, taken from its registered factory so fedsim needs no direct dependency on it. */
function cpuBackendClass(): CpuBackendClass {
  const factory = tf.findBackendFactory("cpu");
  const instance = factory === null ? null : factory();
  if (instance === null || instance instanceof Promise) {
    throw new FedsimError(
      ErrorCode.BACKEND_UNAVAILABLE,
      "the tfjs cpu backend is not registered synchronously",
    );
  }
  const backend = instance as CpuBackendLike;
  const ctor = backend.constructor as CpuBackendClass;
  backend.dispose();
  return ctor;
}

let nativeBackendClass: (new () => NativeBackend) | undefined;

/** Builds (once) the native backend class on top of the cpu backend's class. */
export function nativeBackendFactory(): () => NativeBackend {
  if (nativeBackendClass === undefined) {
    const Base = cpuBackendClass();
    nativeBackendClass = class extends Base implements NativeBackend {
      readonly pool = new Float32Pool();

      floats(info: tf.TensorInfo): Float32Array {
        return this.data.get(info.dataId).values as Float32Array;
      }

      output(shape: number[], values: Float32Array): tf.TensorInfo {
        return this.makeTensorInfo(shape, "float32", values);
      }

      override write(values: tf.backend_util.BackendValues, shape: number[], dtype: tf.DataType): tf.DataId {
        this.pool.noteStored(values);
        return super.write(values, shape, dtype);
      }

      override move(
        dataId: tf.DataId,
        values: tf.backend_util.BackendValues,
        shape: number[],
        dtype: tf.DataType,
        refCount: number,
      ): void {
        this.pool.noteStored(values);
        super.move(dataId, values, shape, dtype, refCount);
      }

      override readSync(dataId: tf.DataId): tf.backend_util.BackendValues {
        if (this.data.has(dataId)) this.pool.noteRead(this.data.get(dataId).values);
        return super.readSync(dataId);
      }

      override disposeData(dataId: tf.DataId, force = false): boolean {
        const values = this.data.has(dataId) ? this.data.get(dataId).values : undefined;
        const released = super.disposeData(dataId, force);
        if (released && values !== undefined && !this.data.has(dataId)) this.pool.noteReleased(values);
        return released;
      }

      override dispose(): void {
        this.pool.clear();
        super.dispose();
      }
    };
  }
  const Backend = nativeBackendClass;
  return () => new Backend();
}
