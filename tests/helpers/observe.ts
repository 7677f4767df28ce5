import { io, type Socket } from "socket.io-client";
import type { FitInstructions } from "../../common/protocol.js";
import { totalSize } from "../../common/weights.js";
import type { DashboardSnapshot } from "../../server/observe/dashboard-events.js";
import { craftResult, type RogueClient } from "./rogue.js";

/** Answers each of the next `rounds` fit requests with a NaN in the delta (refused: NON_FINITE). */
export async function answerWithNaN(rogue: RogueClient, rounds: number): Promise<void> {
  for (let i = 0; i < rounds; i++) {
    const ins: FitInstructions = await rogue.nextFit();
    const values = new Float32Array(totalSize(ins.weights.specs));
    values[3] = Number.NaN;
    await rogue.sendResult(craftResult(ins, values));
  }
}

export interface DashboardEvent {
  name: string;
  payload: unknown;
}

/** A socket.io-client on /dashboard that records every event, in order, and lets a test wait for one. */
export class DashboardRecorder {
  readonly socket: Socket;
  readonly events: DashboardEvent[] = [];
  private readonly listeners = new Set<() => void>();
  private refusal: { message: string; data?: unknown } | null = null;

  constructor(baseUrl: string, auth?: { token: string }, extraHeaders?: Record<string, string>) {
    this.socket = io(`${baseUrl}/dashboard`, {
      transports: ["websocket"],
      reconnection: false,
      forceNew: true,
      ...(auth ? { auth } : {}),
      ...(extraHeaders ? { extraHeaders } : {}),
    });
    this.socket.onAny((name: string, payload: unknown) => {
      this.events.push({ name, payload });
      this.notify();
    });
    this.socket.on("connect_error", (err: Error & { data?: unknown }) => {
      this.refusal = { message: err.message, ...(err.data !== undefined ? { data: err.data } : {}) };
      this.notify();
    });
  }

  /** Resolves with the refusal (connect_error), or throws if the namespace let us in. */
  async refused(): Promise<{ message: string; data?: unknown }> {
    await this.until(() => this.refusal !== null || this.events.length > 0);
    if (!this.refusal) throw new Error(`the namespace let us in: ${this.events[0]?.name}`);
    return this.refusal;
  }

  async snapshot(): Promise<DashboardSnapshot> {
    const e = await this.waitFor((e) => e.name === "snapshot");
    return e.payload as DashboardSnapshot;
  }

  /** The first recorded event matching `match` (waits for it). */
  async waitFor(match: (e: DashboardEvent) => boolean): Promise<DashboardEvent> {
    await this.until(() => this.refusal !== null || this.events.some(match));
    const found = this.events.find(match);
    if (!found) throw new Error(`refused while waiting: ${this.refusal?.message}`);
    return found;
  }

  close(): void {
    this.socket.disconnect();
  }

  private until(condition: () => boolean): Promise<void> {
    if (condition()) return Promise.resolve();
    return new Promise((resolve) => {
      const check = () => {
        if (!condition()) return;
        this.listeners.delete(check);
        resolve();
      };
      this.listeners.add(check);
    });
  }

  private notify(): void {
    for (const l of [...this.listeners]) l();
  }
}

/** Prometheus text format → sample name with its labels (as written) → value. */
export function parsePrometheus(text: string): Map<string, number> {
  const samples = new Map<string, number>();
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*(?:\{[^}]*\})?)\s+(\S+)$/.exec(line);
    if (!match) throw new Error(`not a Prometheus sample line: ${line}`);
    samples.set(match[1], Number(match[2]));
  }
  return samples;
}
