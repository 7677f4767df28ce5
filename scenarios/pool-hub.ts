import { randomBytes } from "node:crypto";
import type { Namespace, Server, Socket } from "socket.io";
import { tokensEqual } from "../common/crypto/auth.js";
import { describeError, ErrorCode, FedsimError } from "../common/errors.js";
import { encodeIndices } from "../common/pool-protocol.js";
import { type Ack, formatZodIssues, safeParseUntrusted } from "../common/protocol.js";
import type { FleetCommand, FleetTransition } from "./pool-fleet.js";
import {
  type ModuleFingerprint,
  POOLS_NAMESPACE,
  type PoolHostToHubEvents,
  type PoolHubToHostEvents,
  poolHostJoinSchema,
} from "./pool-hub-protocol.js";
import type { Scenario } from "./schema.js";
import { assignClients, quotas } from "./sim/pool-shares.js";

/** One pool host as the run sees it. */
export interface RemotePool {
  id: string;
  name: string;
  cores: number;
  /** The client indices it hosts now, ascending. */
  hosted: number[];
}

/** What the hub reports as pools come and go, for logs, tests and the demo. */
export type PoolHubEvent =
  | { type: "joined"; pool: RemotePool }
  | { type: "ready"; pool: RemotePool }
  | { type: "left"; pool: RemotePool; reason: string }
  /** `round` is the round about to start, or for an asynchronous strategy the version being built. */
  | { type: "assigned"; round: number; pools: RemotePool[] };

export interface PoolHubOptions {
  /** The coordinator's Socket.IO server: the hub adds the `/pools` namespace to it. */
  io: Server;
  scenario: Scenario;
  backend: Scenario["backend"];
  runId: string;
  token: string;
  /** Pools to wait for before the first round. */
  minPools: number;
  /** How long a round waits for pools before it tries with what it has. */
  waitMs: number;
  /** How long a pool may take to host its share before the run gives up on it (default 120 s). */
  assignTimeoutMs?: number;
  /** How long a connection may stay silent before joining (default 30 s). */
  joinTimeoutMs?: number;
  /** The files defining the scenario's client or dataset, which a pool must have registered too. */
  modules?: ModuleFingerprint[];
  log: (line: string) => void;
  onEvent?: (event: PoolHubEvent) => void;
}

type HostSocket = Socket<PoolHostToHubEvents, PoolHubToHostEvents>;

interface PoolState extends RemotePool {
  socket: HostSocket;
  ready: boolean;
}

/**
 * The run's side of remote pools: admits `fedsim pool` hosts on the `/pools` namespace, and before
 * each round spreads the scenario's virtual clients over the ready ones in proportion to their
 * cores (sim/pool-shares.ts), moving as few clients as it can. A pool that joins mid-run gets its
 * share from the next round; one that leaves (or dies) loses its clients, whose pending fits fail
 * as disconnects in the round under way, and the next round spreads them over the others.
 * An asynchronous run has no rounds: it calls `betweenSteps` instead, and only idle clients move.
 */
export class PoolHub {
  private readonly namespace: Namespace<PoolHostToHubEvents, PoolHubToHostEvents>;
  /** In the order they joined: the order ties are broken in. */
  private readonly pools = new Map<string, PoolState>();
  private readonly waiters = new Set<() => void>();
  private changed = true;
  private started = false;
  /** Clients an asynchronous rebalance had to leave on a pool above its quota because they were training. */
  private waitingOn: number[] = [];
  private closed = false;

  constructor(private readonly options: PoolHubOptions) {
    this.namespace = options.io.of(POOLS_NAMESPACE) as unknown as Namespace<
      PoolHostToHubEvents,
      PoolHubToHostEvents
    >;
    this.namespace.on("connection", (socket) => this.onConnection(socket));
  }

  /** The pools that are ready, in the order they joined. */
  readyPools(): RemotePool[] {
    return [...this.pools.values()].filter((p) => p.ready).map(snapshot);
  }

  /**
   * Called before every round: waits for pools (the scenario's `minPools` before the first round,
   * at least one later), then rebalances if a pool came or went since the last round.
   */
  async beforeRound(round: number): Promise<void> {
    await this.waitForPools(`round ${round}`);
    // Each failed pool leaves and makes the next pass needed; bounded by the pools there are.
    for (let pass = 0; this.changed && pass <= this.pools.size; pass++) {
      await this.rebalance(round, `round ${round}`, new Set());
    }
  }

  /**
   * An asynchronous run's `beforeRound`, awaited before its first dispatch and between its steps
   * (nothing is dispatched meanwhile): waits for pools as `beforeRound` does (for one only when
   * none is left), then rebalances when a pool came or went, or when clients left in place have
   * finished training. Clients in `training` never move, since a move fails the fit under way,
   * so a joining pool may take its share over several calls.
   */
  async betweenSteps(version: number, training: () => ReadonlySet<number>): Promise<void> {
    if (!this.started || !this.anyReady()) await this.waitForPools(`version ${version}`);
    if (!this.changed && !this.waitingOn.some((i) => !training().has(i))) return;
    this.changed = true;
    for (let pass = 0; this.changed && pass <= this.pools.size; pass++) {
      await this.rebalance(version, `version ${version}`, training());
    }
  }

  /** The script's commands (scenarios/script.ts): only `beforeRound` applies to remote pools. */
  async send(command: FleetCommand): Promise<FleetTransition> {
    if (command.type !== "beforeRound") {
      throw new FedsimError(
        ErrorCode.INCOMPATIBLE_OPTIONS,
        `${command.type}: remote pools take no scripted commands (docs/SCALE-OUT.md)`,
      );
    }
    await this.beforeRound(command.round);
    const hosted = this.readyPools().reduce((sum, p) => sum + p.hosted.length, 0);
    return { offline: [], online: [], onlineCount: hosted };
  }

  /** Tells every pool host the run is over. */
  close(reason = "run finished"): void {
    this.closed = true;
    this.namespace.emit("shutdown", { reason });
    for (const w of [...this.waiters]) w();
  }

  /** `minPools` before the run's start, later at least one. */
  private async waitForPools(when: string): Promise<void> {
    const needed = this.started ? 1 : this.options.minPools;
    this.started = true;
    if (!(await this.waitForReady(needed))) {
      this.options.log(
        `pools: ${when}: ${this.readyPools().length} of ${needed} pool(s) ready after ${this.options.waitMs} ms; trying anyway`,
      );
    }
  }

  private anyReady(): boolean {
    for (const pool of this.pools.values()) if (pool.ready) return true;
    return false;
  }

  private waitForReady(count: number): Promise<boolean> {
    const enough = () => this.readyPools().length >= count;
    if (enough()) return Promise.resolve(true);
    return new Promise((resolve) => {
      const check = () => {
        if (!enough() && !this.closed) return;
        clearTimeout(timer);
        this.waiters.delete(check);
        resolve(enough());
      };
      const timer = setTimeout(() => {
        this.waiters.delete(check);
        resolve(enough());
      }, this.options.waitMs);
      this.waiters.add(check);
    });
  }

  /**
   * Two phases, so that no client is ever hosted twice: every pool first gives up what it loses,
   * then takes what it gains. `pinned` clients stay where they are (sim/pool-shares.ts).
   */
  private async rebalance(round: number, when: string, pinned: ReadonlySet<number>): Promise<void> {
    this.changed = false;
    const ready = [...this.pools.values()].filter((p) => p.ready);
    const owner = new Map<number, string>();
    for (const pool of ready) for (const index of pool.hosted) owner.set(index, pool.id);
    const clients = this.options.scenario.clients;
    const next = assignClients(clients, ready, owner, pinned);
    const target = (pool: PoolState) => next.get(pool.id) as number[];
    const quota = quotas(clients, ready);
    this.waitingOn = ready.flatMap((pool, k) =>
      target(pool).length > quota[k] ? target(pool).filter((i) => pinned.has(i)) : [],
    );
    await Promise.all(
      ready.map((pool) => {
        const keep = new Set(target(pool));
        const kept = pool.hosted.filter((i) => keep.has(i));
        return kept.length < pool.hosted.length ? this.assign(pool, kept, round) : Promise.resolve();
      }),
    );
    await Promise.all(
      ready
        .filter((pool) => this.pools.has(pool.id) && !sameIndices(pool.hosted, target(pool)))
        .map((pool) => this.assign(pool, target(pool), round)),
    );
    const pools = this.readyPools();
    const shares = pools.map((p) => `${p.name || p.id} ${p.hosted.length} (${p.cores} cores)`);
    const waiting =
      this.waitingOn.length > 0 ? `; ${this.waitingOn.length} training client(s) move later` : "";
    this.options.log(`pools: ${when}: ${shares.join(", ") || "no pools"}${waiting}`);
    this.options.onEvent?.({ type: "assigned", round, pools });
  }

  private async assign(pool: PoolState, indices: number[], round: number): Promise<void> {
    let reply: Ack<{ hosted: number }>;
    try {
      reply = await pool.socket
        .timeout(this.options.assignTimeoutMs ?? 120_000)
        .emitWithAck("assign", { round, indices: encodeIndices(indices) });
    } catch {
      reply = { ok: false, code: ErrorCode.CLIENT_TIMEOUT, message: "no answer in time" };
    }
    if (reply.ok) {
      pool.hosted = indices;
      return;
    }
    this.options.log(`pools: ${pool.id} could not host its share: ${reply.code}: ${reply.message}`);
    this.drop(pool, `${reply.code}: ${reply.message}`);
    pool.socket.disconnect(true);
  }

  private onConnection(socket: HostSocket): void {
    const log = this.options.log;
    let pool: PoolState | undefined;
    const silence = setTimeout(() => {
      if (!pool) socket.disconnect(true);
    }, this.options.joinTimeoutMs ?? 30_000);
    const refuse = <T extends object>(reply: (a: Ack<T>) => void, code: ErrorCode, message: string) => {
      log(`pools: refused ${socket.id}: ${code}: ${message}`);
      reply({ ok: false, code, message });
      setTimeout(() => socket.disconnect(true), 50);
    };

    socket.on("join", (raw, ack) => {
      const reply = typeof ack === "function" ? ack : () => {};
      if (pool) return refuse(reply, ErrorCode.DUPLICATE, `this connection already joined as ${pool.id}`);
      const parsed = safeParseUntrusted(poolHostJoinSchema, raw);
      if (!parsed.success) {
        return refuse(
          reply,
          ErrorCode.BAD_PAYLOAD,
          `malformed join: ${formatZodIssues(parsed.error).join("; ")}`,
        );
      }
      const join = parsed.data;
      if (!tokensEqual(join.token, this.options.token)) {
        return refuse(reply, ErrorCode.UNAUTHORIZED, "wrong token");
      }
      // After the token, so that only admitted hosts learn which run this is.
      if (join.run !== this.options.runId) {
        return refuse(
          reply,
          ErrorCode.WRONG_RUN,
          `this coordinator runs ${this.options.runId}, not ${join.run}`,
        );
      }
      if (this.closed) return refuse(reply, ErrorCode.WRONG_RUN, `run ${this.options.runId} is over`);
      clearTimeout(silence);
      pool = {
        id: `p-${randomBytes(4).toString("hex")}`,
        name: join.name,
        cores: join.cores,
        hosted: [],
        socket,
        ready: false,
      };
      this.pools.set(pool.id, pool);
      const address = socket.handshake.address;
      log(`pools: ${pool.id} (${join.name || "unnamed"}) joined from ${address} with ${join.cores} cores`);
      this.options.onEvent?.({ type: "joined", pool: snapshot(pool) });
      reply({
        ok: true,
        poolId: pool.id,
        address,
        scenario: this.options.scenario,
        backend: this.options.backend,
        modules: this.options.modules ?? [],
      });
    });

    socket.on("ready", (ack) => {
      const reply = typeof ack === "function" ? ack : () => {};
      if (!pool) return refuse(reply, ErrorCode.UNKNOWN_CLIENT, "join first");
      if (!pool.ready) {
        pool.ready = true;
        this.changed = true;
        log(`pools: ${pool.id} ready; it takes a share from the next round`);
        this.options.onEvent?.({ type: "ready", pool: snapshot(pool) });
        for (const w of [...this.waiters]) w();
      }
      reply({ ok: true });
    });

    socket.on("disconnect", (reason) => {
      clearTimeout(silence);
      if (pool) this.drop(pool, reason);
    });
  }

  /** Forgets a pool and closes its workers' sessions, so its clients are free for the others at once. */
  private drop(pool: PoolState, reason: string): void {
    if (!this.pools.delete(pool.id)) return;
    if (pool.ready) this.changed = true;
    void this.disconnectWorkers(pool.id);
    if (!this.closed) this.options.log(`pools: ${pool.id} left (${reason})`);
    this.options.onEvent?.({ type: "left", pool: snapshot(pool), reason: describeError(reason) });
  }

  /** Every socket of the pool's workers, on this server and, through the Redis adapter, on its edges. */
  private async disconnectWorkers(poolId: string): Promise<void> {
    for (const socket of this.options.io.of("/").sockets.values()) {
      if (socket.handshake.auth?.poolHost === poolId) socket.disconnect(true);
    }
    try {
      for (const socket of await this.options.io.of("/").fetchSockets()) {
        if (socket.handshake.auth?.poolHost === poolId) socket.disconnect(true);
      }
    } catch (err) {
      this.options.log(`pools: could not reach ${poolId}'s workers on the edges: ${describeError(err)}`);
    }
  }
}

function snapshot(pool: RemotePool): RemotePool {
  return { id: pool.id, name: pool.name, cores: pool.cores, hosted: [...pool.hosted] };
}

function sameIndices(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((x, k) => x === b[k]);
}
