import { availableParallelism } from "node:os";
import { Worker } from "node:worker_threads";
import { ErrorCode, FedsimError } from "../errors.js";

/**
 * The worker threads that seal and open envelope chunks (envelope-worker.js), one per core. Each
 * chunk is one job; jobs queue and go to whichever worker is free, so the chunks of one large
 * update, or of many clients' updates arriving together, use every core. tweetnacl is pure
 * JavaScript, so this is the only way its throughput grows with the machine.
 *
 * Workers start on first use and hold the process open only while they have work.
 */

export interface ChunkJob {
  op: "seal" | "open";
  /** The envelope's secretbox key, a 32-byte array of its own (it is cloned whole to the worker). */
  key: Uint8Array;
  nonce: Uint8Array;
  /** The chunk's bytes in a buffer of their own: it is moved to the worker, not copied. */
  data: Uint8Array;
}

/** A sealed chunk and the SHA-256 of it, an opened chunk, or null when a chunk does not authenticate. */
export type ChunkResult = { bytes: Uint8Array; hash?: Uint8Array } | null;

interface Reply {
  id: number;
  ok: boolean;
  data?: Uint8Array;
  offset?: number;
  hash?: Uint8Array;
}

interface Pending {
  job: ChunkJob;
  resolve: (result: ChunkResult) => void;
  reject: (err: Error) => void;
}

interface Slot {
  worker: Worker;
  busy: Map<number, Pending>;
}

/** Jobs in flight per worker: a second one hides the message round trip behind the first. */
const IN_FLIGHT = 2;
const WORKER_URL = new URL("./envelope-worker.js", import.meta.url);

const queue: { id: number; pending: Pending }[] = [];
const slots: Slot[] = [];
let nextId = 0;

/** Runs every job on the worker threads; results come back in job order. */
export function runChunkJobs(jobs: readonly ChunkJob[]): Promise<ChunkResult[]> {
  const results = jobs.map(
    (job) =>
      new Promise<ChunkResult>((resolve, reject) => {
        queue.push({ id: nextId++, pending: { job, resolve, reject } });
      }),
  );
  dispatch();
  return Promise.all(results);
}

/** How many worker threads the pool runs: one per core the process may use. */
export function envelopeWorkerCount(): number {
  return Math.max(1, availableParallelism());
}

function dispatch(): void {
  // Started on first use, and topped up after a worker dies.
  while (slots.length < envelopeWorkerCount()) slots.push(startSlot());
  for (const slot of slots) {
    while (slot.busy.size < IN_FLIGHT && queue.length > 0) {
      const next = queue.shift()!;
      send(slot, next.id, next.pending);
    }
    if (slot.busy.size > 0) slot.worker.ref();
  }
}

function send(slot: Slot, id: number, pending: Pending): void {
  const { op, key, nonce, data } = pending.job;
  slot.busy.set(id, pending);
  const owned = data.byteOffset === 0 && data.byteLength === data.buffer.byteLength ? data : data.slice();
  slot.worker.postMessage({ id, op, key, nonce, data: owned }, [owned.buffer as ArrayBuffer]);
}

function startSlot(): Slot {
  const worker = new Worker(WORKER_URL);
  const slot: Slot = { worker, busy: new Map() };
  worker.unref();
  worker.on("message", (reply: Reply) => {
    const pending = slot.busy.get(reply.id);
    if (!pending) return;
    slot.busy.delete(reply.id);
    if (!reply.ok || !reply.data) pending.resolve(null);
    else {
      const bytes = reply.data.subarray(reply.offset ?? 0);
      pending.resolve(reply.hash ? { bytes, hash: reply.hash } : { bytes });
    }
    dispatch();
    if (slot.busy.size === 0) worker.unref();
  });
  const fail = (err: Error) => {
    const index = slots.indexOf(slot);
    if (index >= 0) slots.splice(index, 1);
    const error = new FedsimError(ErrorCode.INTERNAL, `envelope worker failed: ${err.message}`);
    for (const pending of slot.busy.values()) pending.reject(error);
    slot.busy.clear();
    void worker.terminate();
    if (queue.length > 0) dispatch();
  };
  worker.on("error", fail);
  worker.on("exit", (code) => {
    if (slot.busy.size > 0) fail(new Error(`exited with code ${code}`));
  });
  return slot;
}
