import { ErrorCode, FedsimError } from "../../common/errors.js";

/** One scheduled happening on the virtual clock. */
export interface SimEvent<T> {
  /** Simulated seconds since the run began. */
  at: number;
  /** Whose event it is; breaks ties between events at the same simulated time. */
  clientId: string;
  payload: T;
}

interface Entry<T> extends SimEvent<T> {
  /** Insertion order: the last tie-breaker, so equal (at, clientId) pairs pop first-in first-out. */
  seq: number;
}

/** Code-unit order, not locale order: the same on every machine. */
function before<T>(a: Entry<T>, b: Entry<T>): boolean {
  if (a.at !== b.at) return a.at < b.at;
  if (a.clientId !== b.clientId) return a.clientId < b.clientId;
  return a.seq < b.seq;
}

/**
 * Events in simulated-time order: a binary min-heap, O(log n) per push and pop. Ties in time are
 * broken by client id, then by insertion order, so the same pushes always pop in the same order
 * however the real work behind them finished on the wall clock.
 */
export class EventQueue<T> {
  private readonly heap: Entry<T>[] = [];
  private pushed = 0;

  get size(): number {
    return this.heap.length;
  }

  push(at: number, clientId: string, payload: T): void {
    if (Number.isNaN(at) || at === Number.NEGATIVE_INFINITY) {
      throw new FedsimError(ErrorCode.INVALID_CONFIG, `event time must be a number, got ${at}`);
    }
    const heap = this.heap;
    heap.push({ at, clientId, payload, seq: this.pushed++ });
    let i = heap.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!before(heap[i], heap[parent])) break;
      [heap[i], heap[parent]] = [heap[parent], heap[i]];
      i = parent;
    }
  }

  /** The earliest event, without removing it. */
  peek(): SimEvent<T> | undefined {
    const top = this.heap[0];
    return top ? { at: top.at, clientId: top.clientId, payload: top.payload } : undefined;
  }

  /** Removes and returns the earliest event; undefined when empty. */
  pop(): SimEvent<T> | undefined {
    const heap = this.heap;
    const top = heap[0];
    if (!top) return undefined;
    const last = heap.pop()!;
    if (heap.length > 0) {
      heap[0] = last;
      this.siftDown(0);
    }
    return { at: top.at, clientId: top.clientId, payload: top.payload };
  }

  /** Pops every event at or before `at`, in order. */
  popUntil(at: number): SimEvent<T>[] {
    const out: SimEvent<T>[] = [];
    while (this.heap.length > 0 && this.heap[0].at <= at) out.push(this.pop()!);
    return out;
  }

  clear(): void {
    this.heap.length = 0;
  }

  private siftDown(start: number): void {
    const heap = this.heap;
    const n = heap.length;
    let i = start;
    for (;;) {
      const left = 2 * i + 1;
      if (left >= n) return;
      const right = left + 1;
      const child = right < n && before(heap[right], heap[left]) ? right : left;
      if (!before(heap[child], heap[i])) return;
      [heap[i], heap[child]] = [heap[child], heap[i]];
      i = child;
    }
  }
}
