/**
 * What the load and soak benchmarks (and their short versions in the test suite) measure about a
 * process: memory, live handles and timers, and event listeners on Socket.IO objects. One module,
 * so a test checks exactly what a benchmark reports.
 */
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";

export interface MemorySample {
  rss: number;
  heapUsed: number;
  heapTotal: number;
  external: number;
  arrayBuffers: number;
}

export function memorySample(): MemorySample {
  const m = process.memoryUsage();
  return {
    rss: m.rss,
    heapUsed: m.heapUsed,
    heapTotal: m.heapTotal,
    external: m.external,
    arrayBuffers: m.arrayBuffers,
  };
}

let gcFunction: (() => void) | null | undefined;

/**
 * Runs a full garbage collection when the runtime allows it, so that heap figures compare live
 * objects rather than how far the collector happened to be behind. Returns false when it cannot.
 */
export function forceGc(): boolean {
  if (gcFunction === undefined) {
    const exposed = (globalThis as { gc?: () => void }).gc;
    if (typeof exposed === "function") gcFunction = exposed;
    else {
      try {
        // The documented way to reach gc() without starting node with --expose-gc.
        setFlagsFromString("--expose-gc");
        gcFunction = runInNewContext("gc") as () => void;
      } catch {
        gcFunction = null;
      }
    }
  }
  if (!gcFunction) return false;
  gcFunction();
  return true;
}

/**
 * Samples process.memoryUsage() on a timer (100 ms by default) and keeps the peaks. The timer is
 * unref'd, so a sampler never keeps a process alive.
 */
export class MemorySampler {
  readonly peak: MemorySample = memorySample();
  samples = 0;
  private timer: NodeJS.Timeout | null = null;

  constructor(private readonly intervalMs = 100) {}

  start(): this {
    if (this.timer) return this;
    this.timer = setInterval(() => this.sample(), this.intervalMs);
    this.timer.unref();
    return this;
  }

  sample(): MemorySample {
    const now = memorySample();
    for (const key of Object.keys(now) as (keyof MemorySample)[]) {
      if (now[key] > this.peak[key]) this.peak[key] = now[key];
    }
    this.samples++;
    return now;
  }

  stop(): MemorySample {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    return this.sample();
  }
}

/** process.getActiveResourcesInfo() counted by kind: { Timeout: 12, TCPSocketWrap: 20, … }. */
export function activeResources(): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const kind of process.getActiveResourcesInfo()) counts[kind] = (counts[kind] ?? 0) + 1;
  return counts;
}

/** An emitter of either kind Socket.IO uses: node's EventEmitter, or component-emitter (its client). */
type AnyEmitter = object;

/**
 * How many listeners an emitter holds over all its events. Node's EventEmitter (the Socket.IO
 * server's objects) answers through eventNames/listenerCount; the Socket.IO client's emitters
 * (component-emitter) keep theirs in `_callbacks`, which has no public count.
 */
export function listenerTotal(emitter: AnyEmitter | null | undefined): number {
  if (!emitter) return 0;
  const node = emitter as {
    eventNames?: () => (string | symbol)[];
    listenerCount?: (e: string | symbol) => number;
  };
  if (typeof node.eventNames === "function" && typeof node.listenerCount === "function") {
    let total = 0;
    for (const name of node.eventNames()) total += node.listenerCount(name);
    return total;
  }
  const callbacks = (emitter as { _callbacks?: Record<string, unknown[]> })._callbacks;
  if (!callbacks) return 0;
  let total = 0;
  for (const list of Object.values(callbacks)) total += Array.isArray(list) ? list.length : 0;
  return total;
}

/** The parts of a Socket.IO server this probe looks at (structural, to stay off private types). */
export interface ProbedServer {
  listenerCount?(event: string): number;
  engine?: AnyEmitter;
  httpServer?: AnyEmitter;
  of(namespace: string): { sockets: Map<string, AnyEmitter & { conn?: AnyEmitter }> } & AnyEmitter;
}

export interface ServerListenerCounts {
  /** The Server, its engine, the HTTP server and the "/" namespace. */
  server: number;
  /** Summed over every connected socket and its engine.io connection. */
  sockets: number;
  socketCount: number;
}

export function serverListeners(io: ProbedServer): ServerListenerCounts {
  const namespace = io.of("/");
  let sockets = 0;
  for (const socket of namespace.sockets.values())
    sockets += listenerTotal(socket) + listenerTotal(socket.conn);
  return {
    server:
      listenerTotal(io) + listenerTotal(io.engine) + listenerTotal(io.httpServer) + listenerTotal(namespace),
    sockets,
    socketCount: namespace.sockets.size,
  };
}

/** A Socket.IO client socket: its own listeners plus its Manager's and engine's. */
export interface ProbedClientSocket {
  io?: AnyEmitter & { engine?: AnyEmitter };
}

export function clientListeners(sockets: readonly (ProbedClientSocket & AnyEmitter)[]): number {
  let total = 0;
  for (const socket of sockets) {
    total += listenerTotal(socket) + listenerTotal(socket.io) + listenerTotal(socket.io?.engine);
  }
  return total;
}

export function mib(bytes: number): number {
  return bytes / (1024 * 1024);
}
