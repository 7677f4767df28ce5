import { io, type Socket } from "socket.io-client";
import { signChallenge } from "../../common/crypto/auth.js";
import { encodePublicKey, generateIdentity, type Identity } from "../../common/crypto/identity.js";
import { encodeIndices, type PoolFit, type PoolWeights } from "../../common/pool-protocol.js";
import { type Ack, PROTOCOL_VERSION, type Welcome } from "../../common/protocol.js";
import { float32ToBytes, totalSize } from "../../common/weights.js";
import { PATIENCE_MS } from "./eventually.js";
import { FAKE_METRICS } from "./rogue.js";

/**
 * A hand-driven pool session: it speaks the pool events of docs/PROTOCOL.md §12 exactly as a test
 * crafts them, so each test can put one kind of bad message in front of a real coordinator.
 */
export class RoguePool {
  readonly socket: Socket;
  readonly weights: PoolWeights[] = [];
  readonly fits: PoolFit[] = [];
  readonly cancels: { index: number; nonce: string; reason: string }[] = [];
  private fitsTaken = 0;
  private readonly listeners = new Set<() => void>();

  private constructor(
    url: string,
    readonly identity: Identity,
  ) {
    this.socket = io(url, { transports: ["websocket"], reconnection: false, forceNew: true });
    this.socket.on("poolWeights", (w: PoolWeights) => {
      this.weights.push(w);
      this.notify();
    });
    this.socket.on("poolFit", (fit: PoolFit) => {
      this.fits.push(fit);
      this.notify();
    });
    this.socket.on("poolCancel", (c: { index: number; nonce: string; reason: string }) => {
      this.cancels.push(c);
      this.notify();
    });
  }

  static async connect(url: string, identity: Identity = generateIdentity()): Promise<RoguePool> {
    const pool = new RoguePool(url, identity);
    await new Promise<void>((resolve, reject) => {
      pool.socket.once("connect", () => resolve());
      pool.socket.once("connect_error", (err: Error) => reject(err));
    });
    return pool;
  }

  /** hello (with `pool: true` and the key) and prove; the final ack. */
  async open(fields: Record<string, unknown> = {}): Promise<Ack<Welcome>> {
    const hello = (await this.emit("hello", {
      protocolVersion: PROTOCOL_VERSION,
      publicKey: encodePublicKey(this.identity.publicKey),
      pool: true,
      ...fields,
    })) as Ack<Welcome>;
    if (!hello.ok || !hello.challenge) return hello;
    return (await this.emit("prove", {
      signature: signChallenge(this.identity, new Uint8Array(hello.challenge)),
    })) as Ack<Welcome>;
  }

  join(indices: number[]): Promise<Ack<{ online: number }>> {
    return this.emit("poolJoin", { indices: encodeIndices(indices) }) as Promise<Ack<{ online: number }>>;
  }

  leave(indices: number[]): Promise<Ack<{ online: number }>> {
    return this.emit("poolLeave", { indices: encodeIndices(indices) }) as Promise<Ack<{ online: number }>>;
  }

  async emit(event: string, ...args: unknown[]): Promise<unknown> {
    return this.socket.timeout(PATIENCE_MS).emitWithAck(event, ...args);
  }

  async nextFit(): Promise<PoolFit> {
    await this.until(() => this.fits.length > this.fitsTaken);
    return this.fits[this.fitsTaken++];
  }

  async cancelled(nonce: string): Promise<void> {
    await this.until(() => this.cancels.some((c) => c.nonce === nonce));
  }

  /** A well-formed answer to `fit` whose delta is `values` (zeros by default). */
  result(
    fit: PoolFit,
    values?: Float32Array,
    overrides: Record<string, unknown> = {},
  ): Record<string, unknown> {
    const specs = this.weights.find((w) => w.version === fit.version)?.weights.specs ?? [];
    const delta = values ?? new Float32Array(totalSize(specs));
    return {
      index: fit.index,
      round: fit.round,
      nonce: fit.nonce,
      update: { numExamples: 10, delta: { specs, data: float32ToBytes(delta) }, metrics: FAKE_METRICS },
      ...overrides,
    };
  }

  send(result: unknown): Promise<Ack> {
    return this.emit("poolFitResult", result) as Promise<Ack>;
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
    for (const listener of [...this.listeners]) listener();
  }
}
