import { ErrorCode, FedsimError } from "./errors.js";
import { firstNonFiniteIndex } from "./vector-passes.js";

/**
 * A model's weights as one flat Float32Array plus the names and shapes of its tensors, in model
 * order. Everything between the socket and the aggregator works on this form: no per-layer
 * copies, no JSON number arrays.
 */
export interface TensorSpec {
  name: string;
  shape: number[];
}

export interface FlatWeights {
  specs: TensorSpec[];
  values: Float32Array;
}

export function tensorSize(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

export function totalSize(specs: readonly TensorSpec[]): number {
  let n = 0;
  for (const s of specs) n += tensorSize(s.shape);
  return n;
}

/** Offsets of each tensor inside the flat vector (length specs.length + 1). */
export function tensorOffsets(specs: readonly TensorSpec[]): number[] {
  const offsets = [0];
  for (const s of specs) offsets.push(offsets[offsets.length - 1] + tensorSize(s.shape));
  return offsets;
}

/** The layer a tensor belongs to: "fc1/kernel" → "fc1". */
export function layerOfTensor(tensorName: string): string {
  const slash = tensorName.lastIndexOf("/");
  return slash >= 0 ? tensorName.slice(0, slash) : tensorName;
}

export function specsEqual(a: readonly TensorSpec[], b: readonly TensorSpec[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) {
    if (a[i].name !== b[i].name) return false;
    if (a[i].shape.length !== b[i].shape.length) return false;
    for (let j = 0; j < a[i].shape.length; j++) if (a[i].shape[j] !== b[i].shape[j]) return false;
  }
  return true;
}

/**
 * The exact bytes of a Float32Array, for sending. Small tensors are often views into one large
 * buffer, so the view's window is copied out rather than its whole backing buffer.
 */
export function float32ToBytes(values: Float32Array): Uint8Array<ArrayBuffer> {
  return new Uint8Array(values.buffer, values.byteOffset, values.byteLength).slice();
}

/**
 * The bytes of a Float32Array without copying, for arrays nobody writes to once sent: Socket.IO
 * may still be writing them out after emit returns. A round's weight snapshot goes to every
 * sampled client this way, one buffer shared by all sends instead of one copy per client.
 */
export function float32BytesView(values: Float32Array): Uint8Array {
  return new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
}

/**
 * A Float32Array over received bytes. Socket.IO hands us Buffers that are usually 4-byte aligned;
 * when one is not, copy instead of failing.
 */
export function bytesToFloat32(bytes: Uint8Array): Float32Array {
  if (bytes.byteLength % 4 !== 0) {
    throw new FedsimError(ErrorCode.BAD_SHAPE, `weight bytes (${bytes.byteLength}) are not a multiple of 4`);
  }
  if (bytes.byteOffset % 4 === 0) {
    return new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4);
  }
  // new Uint8Array(...) copies into a fresh buffer: Buffer#slice would share the whole pool.
  return new Float32Array(new Uint8Array(bytes).buffer);
}

/** Index of the first NaN/Inf, or -1 (a native SIMD scan when the addon is built: common/vector-passes.ts). */
export function firstNonFinite(values: Float32Array): number {
  return firstNonFiniteIndex(values);
}

/**
 * Checks received weights against the expected specs: same tensors, same shapes, right byte
 * length and only finite values. Throws a typed error naming the first problem.
 */
export function validateWeights(
  expected: readonly TensorSpec[],
  specs: readonly TensorSpec[],
  bytes: Uint8Array,
): Float32Array {
  if (!specsEqual(expected, specs)) {
    const want = expected.map((s) => `${s.name}[${s.shape.join("x")}]`).join(", ");
    const got = specs.map((s) => `${s.name}[${s.shape.join("x")}]`).join(", ");
    throw new FedsimError(
      ErrorCode.BAD_SHAPE,
      `tensor specs do not match the model: expected ${want}; got ${got}`,
    );
  }
  const n = totalSize(expected);
  if (bytes.byteLength !== n * 4) {
    throw new FedsimError(
      ErrorCode.BAD_SHAPE,
      `expected ${n} float32 values (${n * 4} bytes), got ${bytes.byteLength} bytes`,
    );
  }
  const values = bytesToFloat32(bytes);
  const bad = firstNonFinite(values);
  if (bad >= 0) {
    throw new FedsimError(ErrorCode.NON_FINITE, `value at index ${bad} is ${values[bad]}`);
  }
  return values;
}

/** The sub-list of specs (and their flat values) for a set of tensor names, in model order. */
export function selectTensors(all: FlatWeights, names: ReadonlySet<string>): FlatWeights {
  const offsets = tensorOffsets(all.specs);
  const specs: TensorSpec[] = [];
  const parts: Float32Array[] = [];
  all.specs.forEach((s, i) => {
    if (names.has(s.name)) {
      specs.push(s);
      parts.push(all.values.subarray(offsets[i], offsets[i + 1]));
    }
  });
  const values = new Float32Array(totalSize(specs));
  let at = 0;
  for (const p of parts) {
    values.set(p, at);
    at += p.length;
  }
  return { specs, values };
}

/** Writes a subset's values back into the full vector (inverse of selectTensors), in place. */
export function mergeTensors(into: FlatWeights, subset: FlatWeights): void {
  const offsets = tensorOffsets(into.specs);
  const index = new Map(into.specs.map((s, i) => [s.name, i]));
  const subOffsets = tensorOffsets(subset.specs);
  subset.specs.forEach((s, j) => {
    const i = index.get(s.name);
    if (i === undefined) throw new FedsimError(ErrorCode.BAD_SHAPE, `unknown tensor ${s.name}`);
    into.values.set(subset.values.subarray(subOffsets[j], subOffsets[j + 1]), offsets[i]);
  });
}
