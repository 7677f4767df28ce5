import { z } from "zod";
import type { ClientNode } from "../../client/node.js";
import type { Identity } from "../../common/crypto/identity.js";
import { describeError, ErrorCode, FedsimError } from "../../common/errors.js";
import { formatZodIssues, safeParseUntrusted } from "../../common/protocol.js";
import type { Scenario } from "../schema.js";
import { AvailabilityModel } from "./availability.js";
import { NetworkConditions, scheduledNetworkScale } from "./heterogeneity.js";
import { clientRefSchema, type HostedClients, type PoolClientRef } from "./hosted-clients.js";
import { type PoolOptions, startClientPool } from "./pool.js";
import { VirtualPool } from "./virtual-pool.js";

/**
 * Scripted changes to a pool's clients while a run goes on: availability per round, kills and
 * revivals, network slowdowns. The runner sends commands (over IPC to a pool process, or as
 * method calls in-process) and each is acknowledged only once the clients have made the
 * transition on their side: disconnected, or reconnected and welcomed again.
 *
 * Client indices in kill/revive are the scenario's indices; a pool acts on those it hosts and
 * ignores the others, so the runner may send the same command to every pool.
 */
const clientIndices = z.array(z.number().int().nonnegative()).max(1_000_000);

export const poolCommandSchema = z.discriminatedUnion("type", [
  /** Apply round `round`'s availability (and scheduled network scale) before it is sampled. */
  z
    .object({ type: z.literal("beforeRound"), id: z.number().int(), round: z.number().int().positive() })
    .strict(),
  /** Take these clients offline until revived, whatever their availability says. */
  z.object({ type: z.literal("kill"), id: z.number().int(), clientIndices }).strict(),
  /**
   * Host exactly these clients from now on (a remote pool's share, scenarios/pool-host.ts): the
   * ones dropped are released to other pools, the new ones join. Pool sessions only.
   */
  z.object({ type: z.literal("host"), id: z.number().int(), clientIndices }).strict(),
  /** Undo a kill; the clients come back if the current round's availability has them online. */
  z.object({ type: z.literal("revive"), id: z.number().int(), clientIndices }).strict(),
  /** Multiply every network delay by `scale` (on top of the scenario's networkScale schedule). */
  z
    .object({
      type: z.literal("setNetworkScale"),
      id: z.number().int(),
      scale: z.number().positive().finite(),
    })
    .strict(),
]);
export type PoolCommand = z.infer<typeof poolCommandSchema>;

/** The clients a command took offline and brought back (with the ids the coordinator knows). */
export const poolTransitionSchema = z.object({
  offline: z.array(clientRefSchema),
  online: z.array(clientRefSchema),
});
export type PoolTransition = z.infer<typeof poolTransitionSchema>;

/** The reply to a command, with its id. `onlineCount`: this pool's clients meant to be online now. */
export const poolAckSchema = z.discriminatedUnion("ok", [
  z.object({
    type: z.literal("ack"),
    id: z.number().int(),
    ok: z.literal(true),
    changed: poolTransitionSchema,
    onlineCount: z.number().int().nonnegative(),
  }),
  z.object({
    type: z.literal("ack"),
    id: z.number().int(),
    ok: z.literal(false),
    code: z.string(),
    message: z.string(),
    details: z.array(z.string()),
  }),
]);
export type PoolAck = z.infer<typeof poolAckSchema>;

export interface PoolControllerOptions {
  /** The scenario's seed, clients, availability and heterogeneity decide who is online and how slow. */
  scenario: Pick<Scenario, "seed" | "clients" | "availability" | "heterogeneity">;
  /** The pool's clients. */
  clients: HostedClients;
  /** The multiplier the pool's network behaviours read. */
  network: NetworkConditions;
  /** How long a returning client may take to be welcomed again (default 30 s). */
  connectTimeoutMs?: number;
  log?: (line: string) => void;
}

export class PoolController {
  private readonly options: PoolControllerOptions;
  private readonly availability: AvailabilityModel;
  private readonly killed = new Set<number>();
  /** 0 before the first round: everyone online, as the pool started. */
  private round = 0;
  private manualScale = 1;
  private queue: Promise<unknown> = Promise.resolve();

  constructor(options: PoolControllerOptions) {
    this.options = options;
    this.availability = new AvailabilityModel(options.scenario);
    for (const index of options.clients.indices()) this.checkIndex(index);
  }

  /** Applies `round`'s availability and network scale; resolves when every client has made the switch. */
  beforeRound(round: number): Promise<PoolTransition> {
    if (!Number.isInteger(round) || round < 1) {
      throw new FedsimError(ErrorCode.INVALID_CONFIG, `round must be an integer ≥ 1, got ${round}`);
    }
    return this.serially(() => {
      this.round = round;
      this.applyNetworkScale();
      return this.settle();
    });
  }

  kill(clientIndices: readonly number[]): Promise<PoolTransition> {
    for (const index of clientIndices) this.checkIndex(index);
    return this.serially(() => {
      for (const index of clientIndices) this.killed.add(index);
      return this.settle();
    });
  }

  revive(clientIndices: readonly number[]): Promise<PoolTransition> {
    for (const index of clientIndices) this.checkIndex(index);
    return this.serially(() => {
      for (const index of clientIndices) this.killed.delete(index);
      return this.settle();
    });
  }

  /** Hosts exactly these clients; `offline` lists the released ones, `online` the added ones. */
  host(clientIndices: readonly number[]): Promise<PoolTransition> {
    for (const index of clientIndices) this.checkIndex(index);
    const clients = this.options.clients;
    if (!clients.setHosted) {
      throw new FedsimError(
        ErrorCode.INCOMPATIBLE_OPTIONS,
        "only a pool session can change the clients it hosts",
      );
    }
    const setHosted = clients.setHosted.bind(clients);
    return this.serially(async () => {
      const { released, added } = await setHosted(clientIndices);
      // New clients joined online; the round's availability may still want some of them offline.
      await this.settle();
      return { offline: released, online: added };
    });
  }

  setNetworkScale(scale: number): void {
    if (!(scale > 0 && Number.isFinite(scale))) {
      throw new FedsimError(ErrorCode.INVALID_CONFIG, `scale must be a finite number > 0, got ${scale}`);
    }
    this.manualScale = scale;
    this.applyNetworkScale();
  }

  /** Whether a hosted client should be online now (the current round's availability, no kill). */
  shouldBeOnline(index: number): boolean {
    if (this.killed.has(index)) return false;
    return this.round === 0 || this.availability.isOnline(index, this.round);
  }

  /** Runs one command (e.g. from IPC); never throws: a failure is an ack with ok false. */
  async handle(raw: unknown): Promise<PoolAck> {
    const id = typeof (raw as { id?: unknown })?.id === "number" ? (raw as { id: number }).id : -1;
    const parsed = safeParseUntrusted(poolCommandSchema, raw);
    if (!parsed.success) {
      return {
        type: "ack",
        id,
        ok: false,
        code: ErrorCode.BAD_PAYLOAD,
        message: "pool: invalid command",
        details: formatZodIssues(parsed.error),
      };
    }
    const command = parsed.data;
    try {
      const changed = await this.run(command);
      return { type: "ack", id, ok: true, changed, onlineCount: this.onlineCount() };
    } catch (err) {
      return {
        type: "ack",
        id,
        ok: false,
        code: err instanceof FedsimError ? err.code : ErrorCode.INTERNAL,
        message: err instanceof Error ? err.message : String(err),
        details: err instanceof FedsimError ? [...err.details] : [],
      };
    }
  }

  private run(command: PoolCommand): Promise<PoolTransition> {
    switch (command.type) {
      case "beforeRound":
        return this.beforeRound(command.round);
      case "kill":
        return this.kill(command.clientIndices);
      case "revive":
        return this.revive(command.clientIndices);
      case "host":
        return this.host(command.clientIndices);
      case "setNetworkScale":
        this.setNetworkScale(command.scale);
        return Promise.resolve({ offline: [], online: [] });
    }
  }

  private onlineCount(): number {
    let count = 0;
    const clients = this.options.clients;
    for (const index of clients.indices()) if (!clients.isGone(index) && this.shouldBeOnline(index)) count++;
    return count;
  }

  private applyNetworkScale(): void {
    const scheduled = scheduledNetworkScale(this.options.scenario.heterogeneity, Math.max(this.round, 1));
    this.options.network.setScale(scheduled * this.manualScale);
  }

  /** Brings every hosted client to where it should be; the ones that moved. */
  private async settle(): Promise<PoolTransition> {
    const clients = this.options.clients;
    const leaving: number[] = [];
    const returning: number[] = [];
    for (const index of clients.indices()) {
      if (clients.isGone(index)) continue;
      const wanted = this.shouldBeOnline(index);
      if (!wanted && !clients.isOffline(index)) leaving.push(index);
      else if (wanted && clients.isOffline(index)) returning.push(index);
    }
    const changed: PoolTransition = {
      offline: await clients.takeOffline(leaving),
      online: await clients.bringOnline(returning, this.options.connectTimeoutMs ?? 30_000),
    };
    changed.online.sort((a, b) => a.index - b.index);
    if (changed.offline.length + changed.online.length > 0) {
      this.options.log?.(
        `pool: round ${this.round}: ${changed.offline.length} went offline, ${changed.online.length} came back`,
      );
    }
    return changed;
  }

  private serially<T>(task: () => Promise<T>): Promise<T> {
    const result = this.queue.then(task, task);
    this.queue = result.catch(() => undefined);
    return result;
  }

  private checkIndex(index: number): void {
    const clients = this.options.scenario.clients;
    if (!Number.isInteger(index) || index < 0 || index >= clients) {
      throw new FedsimError(ErrorCode.INVALID_CONFIG, `client index ${index} is outside [0, ${clients})`);
    }
  }
}

/** A pool and its controller. */
export interface ControlledPool {
  /** In the order of `clientIndices` (empty for a pool session: its clients have no node each). */
  nodes: ClientNode[];
  controller: PoolController;
  /** Every hosted client will never connect again (closed, refused, or sent away). */
  readonly isGone: boolean;
  close(): void;
}

/** Starts a pool with a controller over its clients and network: a pool session, or one socket per client. */
export async function startControlledPool(
  options: PoolOptions & { session?: { identity: Identity }; auth?: Record<string, string> },
): Promise<ControlledPool> {
  const network = options.network ?? new NetworkConditions();
  if (options.session) {
    const pool = new VirtualPool({ ...options, identity: options.session.identity, network });
    await pool.start();
    return {
      nodes: [],
      controller: new PoolController({
        scenario: options.scenario,
        clients: virtualClients(pool),
        network,
        ...(options.log ? { log: options.log } : {}),
      }),
      get isGone() {
        return pool.isGone;
      },
      close: () => pool.close(),
    };
  }
  const nodes = await startClientPool({ ...options, network });
  const byIndex = new Map(options.clientIndices.map((index, i) => [index, nodes[i]] as const));
  const controller = new PoolController({
    scenario: options.scenario,
    clients: nodeClients(byIndex),
    network,
    ...(options.log ? { log: options.log } : {}),
  });
  return {
    nodes,
    controller,
    get isGone() {
      return nodes.every((n) => n.isGone);
    },
    close: () => {
      for (const node of nodes) node.close();
    },
  };
}

/** One ClientNode per client: offline is a closed socket, online a fresh handshake. */
export function nodeClients(nodes: ReadonlyMap<number, ClientNode>): HostedClients {
  const node = (index: number) => nodes.get(index) as ClientNode;
  return {
    indices: () => [...nodes.keys()].sort((a, b) => a - b),
    isGone: (index) => node(index).isGone,
    isOffline: (index) => node(index).isOffline,
    takeOffline: async (indices) =>
      indices.map((index) => {
        node(index).disconnect();
        return { index, clientId: node(index).clientId };
      }),
    bringOnline: async (indices, timeoutMs) => {
      const returned = await Promise.allSettled(
        indices.map(async (index) => ({ index, clientId: await node(index).connect(timeoutMs) })),
      );
      const failures = returned.filter((r) => r.status === "rejected");
      if (failures.length > 0) {
        throw new FedsimError(
          ErrorCode.CLIENT_TIMEOUT,
          `pool: ${failures.length} client(s) did not come back online`,
          failures.map((f) => describeError((f as PromiseRejectedResult).reason)),
        );
      }
      return returned.map((r) => (r as PromiseFulfilledResult<PoolClientRef>).value);
    },
  };
}

/** The virtual clients of a pool session: offline and online are poolLeave and poolJoin. */
function virtualClients(pool: VirtualPool): HostedClients {
  return {
    indices: () => pool.hosted(),
    isGone: () => pool.isGone,
    isOffline: (index) => pool.isOffline(index),
    takeOffline: (indices) => pool.takeOffline(indices),
    bringOnline: (indices, timeoutMs) => pool.bringOnline(indices, timeoutMs),
    setHosted: async (indices) => {
      const { released, added } = await pool.setHosted(indices);
      const ref = (index: number) => ({ index, clientId: pool.clientId(index) });
      return { released: released.map(ref), added: added.map(ref) };
    },
  };
}

/** The parts of a process's IPC channel the pool uses (`process` in a forked pool). */
export interface PoolIpcChannel {
  on(event: "message", listener: (message: unknown) => void): unknown;
  off(event: "message", listener: (message: unknown) => void): unknown;
  send?: (message: PoolAck) => unknown;
}

/** Answers commands arriving on `channel` with acks; returns a function that stops listening. */
export function servePoolCommands(controller: PoolController, channel: PoolIpcChannel): () => void {
  const listener = (message: unknown) => {
    void controller.handle(message).then((ack) => channel.send?.(ack));
  };
  channel.on("message", listener);
  return () => channel.off("message", listener);
}
