/**
 * Hosts many virtual clients (ClientNode instances, one Socket.IO connection each) in one
 * process, for the load and soak benchmarks: in a forked worker (bench/sections/load-worker.ts) or in the
 * caller's own process. Connects them in waves, so a burst of thousands of TCP handshakes does
 * not overflow the listen backlog, and counts what went wrong on the client side.
 */
import { ClientNode } from "../../client/node.js";
import { ModelWorkbench } from "../../client/workbench.js";
import { deriveSeed } from "../../common/rng.js";
import { tinyClientData } from "./load-data.js";
import { forceGc, memorySample } from "./probe.js";

export interface HostClientsOptions {
  url: string;
  /** Global indices of the clients this process hosts: [first, first + count). */
  first: number;
  count: number;
  seed: number;
  examplesPerClient: number;
  /** How many connections to open before waiting for their handshakes (default 250). */
  wave?: number;
  /** How long one client may take to be admitted (default 60 s). */
  readyTimeoutMs?: number;
}

export interface HostedReport {
  clients: number;
  connected: number;
  connectSeconds: number;
  /** CPU (user + system) this process spent connecting its clients. */
  connectCpuSeconds: number;
  /** This process before any client existed and once all were admitted, after a full GC when possible. */
  rssBefore: number;
  rssAfter: number;
  heapBefore: number;
  heapAfter: number;
}

export interface ClientErrors {
  count: number;
  /** The first few lines, to say what went wrong. */
  samples: string[];
}

export class HostedClients {
  readonly nodes: ClientNode[] = [];
  readonly errors: ClientErrors = { count: 0, samples: [] };

  private constructor(private readonly options: HostClientsOptions) {}

  /** Creates the clients and resolves once all were admitted (or gave up). */
  static async start(options: HostClientsOptions): Promise<{ hosted: HostedClients; report: HostedReport }> {
    const hosted = new HostedClients(options);
    const report = await hosted.connectAll();
    return { hosted, report };
  }

  roundsTrained(): number {
    return this.nodes.reduce((sum, n) => sum + n.roundsTrained, 0);
  }

  close(): void {
    for (const node of this.nodes) node.close();
  }

  private async connectAll(): Promise<HostedReport> {
    const o = this.options;
    const workbench = new ModelWorkbench();
    // The data is built up front, so the memory delta below is the clients' own cost.
    const data = Array.from({ length: o.count }, (_, i) =>
      tinyClientData(o.seed, o.first + i, o.examplesPerClient),
    );
    forceGc();
    const before = memorySample();
    const started = performance.now();
    const cpuStart = process.cpuUsage();
    let connected = 0;
    const wave = o.wave ?? 250;
    for (let start = 0; start < o.count; start += wave) {
      const batch: ClientNode[] = [];
      for (let i = start; i < Math.min(start + wave, o.count); i++) {
        const node = new ClientNode({
          url: o.url,
          data: data[i],
          workbench,
          label: `load-${o.first + i}`,
          seed: deriveSeed(o.seed, "load-client", o.first + i),
          log: (line) => this.noteLog(line),
        });
        batch.push(node);
        this.nodes.push(node);
      }
      const outcomes = await Promise.all(batch.map((n) => withTimeout(n.ready, o.readyTimeoutMs ?? 60_000)));
      connected += outcomes.filter(Boolean).length;
    }
    const connectSeconds = (performance.now() - started) / 1000;
    const cpu = process.cpuUsage(cpuStart);
    forceGc();
    const after = memorySample();
    return {
      clients: o.count,
      connected,
      connectSeconds,
      connectCpuSeconds: (cpu.user + cpu.system) / 1e6,
      rssBefore: before.rss,
      rssAfter: after.rss,
      heapBefore: before.heapUsed,
      heapAfter: after.heapUsed,
    };
  }

  private noteLog(line: string): void {
    // ClientNode logs every problem with one of these words; "disconnected: …" at shutdown is not one.
    if (!/handshake failed|fit failed|refused|connect: /i.test(line)) return;
    this.errors.count++;
    if (this.errors.samples.length < 5) this.errors.samples.push(line);
  }
}

/** Resolves true when `promise` fulfils within `ms`, false when it rejects or takes longer. */
function withTimeout(promise: Promise<unknown>, ms: number): Promise<boolean> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), ms);
    promise.then(
      () => {
        clearTimeout(timer);
        resolve(true);
      },
      () => {
        clearTimeout(timer);
        resolve(false);
      },
    );
  });
}
