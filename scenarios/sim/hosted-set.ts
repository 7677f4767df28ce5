import { ErrorCode, FedsimError } from "../../common/errors.js";

/**
 * The client indices a pool hosts, each with an offline flag: an int32 and a byte per client,
 * so a pool of a hundred thousand idle clients stays small. The set may be replaced whole (a
 * remote pool's share changing between rounds); kept clients keep their flags.
 */
export class HostedSet {
  private indices: Int32Array;
  private offline: Uint8Array;

  constructor(indices: ArrayLike<number>) {
    this.indices = Int32Array.from(indices).sort();
    this.offline = new Uint8Array(this.indices.length);
  }

  get size(): number {
    return this.indices.length;
  }

  /** Hosted indices, ascending. */
  all(): Int32Array {
    return this.indices;
  }

  online(): number[] {
    return Array.from(this.indices).filter((_, k) => this.offline[k] === 0);
  }

  has(index: number): boolean {
    return this.find(index) >= 0;
  }

  /** UNKNOWN_CLIENT for an index not hosted. */
  isOffline(index: number): boolean {
    return this.offline[this.position(index)] === 1;
  }

  setOffline(index: number, offline: boolean): void {
    this.offline[this.position(index)] = offline ? 1 : 0;
  }

  /** Hosts exactly `next` from now on (new ones online); the indices dropped and added. */
  replace(next: ArrayLike<number>): { released: number[]; added: number[] } {
    const indices = Int32Array.from(new Set(Array.from(next))).sort();
    const wanted = new Set(indices);
    const released = Array.from(this.indices).filter((i) => !wanted.has(i));
    const added = Array.from(indices).filter((i) => !this.has(i));
    const offline = new Uint8Array(indices.length);
    indices.forEach((index, k) => {
      const before = this.find(index);
      if (before >= 0) offline[k] = this.offline[before];
    });
    this.indices = indices;
    this.offline = offline;
    return { released, added };
  }

  /** Where a hosted index sits; UNKNOWN_CLIENT for one not hosted. */
  position(index: number): number {
    const k = this.find(index);
    if (k < 0) throw new FedsimError(ErrorCode.UNKNOWN_CLIENT, `this pool does not host client ${index}`);
    return k;
  }

  /** Binary search; -1 when absent. */
  private find(index: number): number {
    let lo = 0;
    let hi = this.indices.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      const v = this.indices[mid];
      if (v === index) return mid;
      if (v < index) lo = mid + 1;
      else hi = mid - 1;
    }
    return -1;
  }
}
