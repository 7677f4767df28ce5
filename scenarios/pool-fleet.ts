import type { ChildProcess } from "node:child_process";
import { ErrorCode, FedsimError } from "../common/errors.js";
import { safeParseUntrusted } from "../common/protocol.js";
import {
  type ControlledPool,
  type PoolAck,
  type PoolCommand,
  type PoolTransition,
  poolAckSchema,
} from "./sim/pool-control.js";

/** A command for every pool, without the id the fleet adds. */
export type FleetCommand =
  | { type: "beforeRound"; round: number }
  | { type: "kill"; clientIndices: number[] }
  | { type: "revive"; clientIndices: number[] }
  | { type: "setNetworkScale"; scale: number };

/** What all pools did for one command. */
export interface FleetTransition extends PoolTransition {
  /** Clients of all pools that are meant to be online now. */
  onlineCount: number;
}

/**
 * The runner's handle on its client pools, forked or in this process: sends each scripted
 * command to every pool (a pool ignores clients it does not host) and waits for all acks.
 */
export class PoolFleet {
  private nextId = 1;
  private readonly waiting = new Map<number, (ack: PoolAck) => void>();
  private readonly ready: Promise<unknown>;

  private constructor(
    private readonly children: readonly ChildProcess[],
    private readonly local: readonly ControlledPool[],
    private readonly timeoutMs: number,
  ) {
    const readiness: Promise<void>[] = [];
    for (const child of children) {
      let markReady = () => {};
      readiness.push(new Promise<void>((resolve) => (markReady = resolve)));
      child.on("message", (raw: unknown) => {
        if (isReadyMessage(raw)) markReady();
        const parsed = safeParseUntrusted(poolAckSchema, raw);
        if (!parsed.success) return;
        this.waiting.get(parsed.data.id)?.(parsed.data);
      });
    }
    this.ready = Promise.all(readiness);
  }

  static forked(children: readonly ChildProcess[], timeoutMs = 60_000): PoolFleet {
    return new PoolFleet(children, [], timeoutMs);
  }

  static inProcess(pools: readonly ControlledPool[], timeoutMs = 60_000): PoolFleet {
    return new PoolFleet([], pools, timeoutMs);
  }

  async send(command: FleetCommand): Promise<FleetTransition> {
    await this.untilReady();
    const acks = await Promise.all([
      ...this.local.map((pool) => pool.controller.handle({ ...command, id: this.nextId++ })),
      ...this.children.map((child) => this.sendToChild(child, command)),
    ]);
    const out: FleetTransition = { offline: [], online: [], onlineCount: 0 };
    for (const ack of acks) {
      if (!ack.ok) {
        throw new FedsimError(
          ack.code as ErrorCode,
          `client pool refused ${command.type}: ${ack.message}`,
          ack.details,
        );
      }
      out.offline.push(...ack.changed.offline);
      out.online.push(...ack.changed.online);
      out.onlineCount += ack.onlineCount;
    }
    return out;
  }

  /** How many forked pool processes the fleet commands. */
  get forkedCount(): number {
    return this.children.length;
  }

  /** Tells forked pool `k` which clients to host (scenarios/pool-host.ts gives each worker its part). */
  async host(k: number, clientIndices: number[]): Promise<PoolTransition> {
    await this.untilReady();
    const child = this.children[k];
    if (!child) throw new FedsimError(ErrorCode.INTERNAL, `no pool process ${k}`);
    const ack = await this.sendToChild(child, { type: "host", clientIndices });
    if (!ack.ok) {
      throw new FedsimError(ack.code as ErrorCode, `client pool refused host: ${ack.message}`, ack.details);
    }
    return ack.changed;
  }

  /** Resolves once every forked pool listens for commands. */
  whenReady(): Promise<void> {
    return this.untilReady();
  }

  /** Forked pools announce themselves once they listen for commands. */
  private async untilReady(): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () =>
          reject(new FedsimError(ErrorCode.INTERNAL, `client pools not ready within ${this.timeoutMs} ms`)),
        this.timeoutMs,
      );
    });
    try {
      await Promise.race([this.ready, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  private sendToChild(
    child: ChildProcess,
    command: FleetCommand | { type: "host"; clientIndices: number[] },
  ): Promise<PoolAck> {
    const id = this.nextId++;
    const message: PoolCommand = { ...command, id };
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiting.delete(id);
        reject(
          new FedsimError(
            ErrorCode.INTERNAL,
            `client pool ${child.pid} did not answer ${command.type} within ${this.timeoutMs} ms`,
          ),
        );
      }, this.timeoutMs);
      this.waiting.set(id, (ack) => {
        clearTimeout(timer);
        this.waiting.delete(id);
        resolve(ack);
      });
      child.send(message, (err) => {
        if (!err) return;
        clearTimeout(timer);
        this.waiting.delete(id);
        reject(new FedsimError(ErrorCode.INTERNAL, `client pool ${child.pid} is gone: ${err.message}`));
      });
    });
  }
}

function isReadyMessage(raw: unknown): boolean {
  return typeof raw === "object" && raw !== null && (raw as { type?: unknown }).type === "ready";
}
