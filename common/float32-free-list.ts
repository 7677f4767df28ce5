/**
 * Spare Float32Arrays by length, for model-sized buffers that are needed again and again (a client's
 * update, one per fit). A fresh multi-megabyte typed array is zero-filled and its pages are mapped on
 * first write, and dropping it adds to the external memory that drives V8's full collections; a reused
 * one costs neither. Only arrays whose last user is known to be done may be given back.
 */
import { ErrorCode, FedsimError } from "./errors.js";

/** Arrays shorter than this are cheap to allocate and are never kept. */
const MIN_KEPT_LENGTH = 4096;

export class Float32FreeList {
  private readonly byLength = new Map<number, Float32Array[]>();
  private keptBytes = 0;
  /** Counters for tests: arrays handed out fresh and reused. */
  readonly stats = { allocated: 0, reused: 0 };

  /** @param maxKeptBytes spare arrays kept at most, in bytes; arrays given back beyond it are dropped. */
  constructor(private readonly maxKeptBytes: number) {
    if (!Number.isFinite(maxKeptBytes) || maxKeptBytes < 0) {
      throw new FedsimError(
        ErrorCode.INVALID_CONFIG,
        `maxKeptBytes must be a number >= 0, got ${maxKeptBytes}`,
      );
    }
  }

  /** An array of `length` floats with arbitrary contents: the caller must write every element. */
  take(length: number): Float32Array {
    const spare = this.byLength.get(length)?.pop();
    if (spare !== undefined) {
      this.keptBytes -= spare.byteLength;
      this.stats.reused++;
      return spare;
    }
    this.stats.allocated++;
    return new Float32Array(length);
  }

  /** Hands back an array nobody reads or writes any more. Views into larger buffers are not kept. */
  give(array: Float32Array): void {
    if (array.length < MIN_KEPT_LENGTH || array.byteLength !== array.buffer.byteLength) return;
    if (this.keptBytes + array.byteLength > this.maxKeptBytes) return;
    const list = this.byLength.get(array.length);
    if (list?.includes(array)) return;
    if (list === undefined) this.byLength.set(array.length, [array]);
    else list.push(array);
    this.keptBytes += array.byteLength;
  }

  /** Spare bytes currently kept. */
  get bytes(): number {
    return this.keptBytes;
  }
}
