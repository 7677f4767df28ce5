import { io, type Socket } from "socket.io-client";
import { FitRepeats, runLocalFit } from "../../client/local-fit.js";
import type { ModelWorkbench } from "../../client/workbench.js";
import { signChallenge } from "../../common/crypto/auth.js";
import { encodePublicKey, type Identity } from "../../common/crypto/identity.js";
import { type Dataset, holdOut } from "../../common/data/dataset.js";
import type { PartitionTable } from "../../common/data/partition-table.js";
import { cryptoNormalSource } from "../../common/dp/noise.js";
import { describeError, ErrorCode, FedsimError } from "../../common/errors.js";
import { lenientParser } from "../../common/net/lenient-parser.js";
import {
  encodeIndices,
  POOL_WEIGHT_VERSIONS,
  poolEvaluateSchema,
  poolFitSchema,
  poolWeightsSchema,
  virtualClientId,
} from "../../common/pool-protocol.js";
import {
  type Ack,
  type ClientToServerEvents,
  type EvaluateReply,
  formatZodIssues,
  type ModelDescriptor,
  PROTOCOL_VERSION,
  type ServerToClientEvents,
  safeParseUntrusted,
} from "../../common/protocol.js";
import { deriveSeed } from "../../common/rng.js";
import { bytesToFloat32, type FlatWeights } from "../../common/weights.js";
import { clientData, loadScenarioData, partitionForClients } from "../data.js";
import type { Scenario } from "../schema.js";
import { labelFlippedCopy } from "./attacks.js";
import { NetworkConditions } from "./heterogeneity.js";
import type { PoolClientRef } from "./hosted-clients.js";
import { HostedSet } from "./hosted-set.js";
import { scenarioAttackers, scenarioBehaviour, scenarioWorkbench } from "./pool.js";

export interface VirtualPoolOptions {
  url: string;
  scenario: Scenario;
  /** Which of the scenario's clients this pool hosts (indices into its partition). */
  clientIndices: ArrayLike<number>;
  /** The pool's key: the coordinator derives every virtual client's id from it and the index. */
  identity: Identity;
  token?: string;
  ca?: string;
  log?: (line: string) => void;
  network?: NetworkConditions;
  sleep?: (ms: number) => Promise<void>;
  /** Socket.IO handshake `auth` (a remote pool's workers name their pool host: docs/PROTOCOL.md §12). */
  auth?: Record<string, string>;
}

const realSleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/**
 * Hosts many virtual clients over one pool session (docs/PROTOCOL.md §12). An idle client costs
 * an int32 and a byte here: its data, behaviour and seed are derived from the scenario and its
 * index when it is asked to train, and dropped afterwards.
 */
export class VirtualPool {
  readonly socket: Socket<ServerToClientEvents, ClientToServerEvents>;
  private readonly hostedSet: HostedSet;
  private readonly versions = new Map<number, FlatWeights>();
  private frozen: FlatWeights | undefined;
  private model: ModelDescriptor | null = null;
  private maxPayloadBytes = 0;
  private readonly cancelled = new Set<string>();
  private readonly workbench: ModelWorkbench;
  /** Fits started per client on the latest round (a few entries: cleared when the round moves). */
  private readonly repeats = new FitRepeats();
  private readonly attackers: ReadonlySet<number>;
  private readonly network: NetworkConditions;
  private data: { train: Dataset; table: PartitionTable } | null = null;
  private welcomed: Promise<void>;
  private markWelcomed: () => void = () => {};
  private failWelcome: (err: Error) => void = () => {};
  /** Bumped on every disconnect, so a fit that began on an earlier connection is not sent. */
  private connection = 0;
  private closed = false;
  fitsSent = 0;

  constructor(private readonly options: VirtualPoolOptions) {
    this.hostedSet = new HostedSet(options.clientIndices);
    this.attackers = scenarioAttackers(options.scenario);
    this.workbench = scenarioWorkbench(options.scenario);
    this.network = options.network ?? new NetworkConditions();
    this.welcomed = this.nextWelcome();
    this.socket = io(options.url, {
      transports: ["websocket"],
      reconnectionDelay: 500,
      reconnectionDelayMax: 5000,
      autoConnect: false,
      ...(options.auth ? { auth: options.auth } : {}),
      ...(options.ca ? { ca: options.ca } : {}),
      parser: lenientParser,
    });
    this.socket.on("connect", () => void this.handshake());
    this.socket.on("disconnect", () => {
      this.connection++;
      this.welcomed = this.nextWelcome();
    });
    this.socket.on("poolWeights", (raw) => this.onWeights(raw));
    this.socket.on("poolFit", (raw) => void this.onFit(raw));
    this.socket.on("poolCancel", (info) => {
      this.cancelled.add(String(info?.nonce));
      if (this.cancelled.size > 10_000) this.cancelled.delete(this.cancelled.values().next().value as string);
    });
    this.socket.on("poolEvaluate", (raw, ack) => {
      if (typeof ack !== "function") return;
      this.onEvaluate(raw)
        .then((reply) => ack({ ok: true, ...reply }))
        .catch((err) => ack({ ok: false, code: codeOf(err), message: describeError(err) }));
    });
    this.socket.on("shutdown", () => this.close());
  }

  /** Loads the scenario's data and its partition table (start does this first). */
  async prepare(): Promise<void> {
    if (this.data) return;
    const { train } = await loadScenarioData(this.options.scenario);
    this.data = { train, table: partitionForClients(this.options.scenario, train) };
  }

  /** Prepares, connects, authenticates and brings every hosted client online. */
  async start(timeoutMs = 60_000): Promise<void> {
    await this.prepare();
    this.socket.connect();
    await withTimeout(this.welcomed, timeoutMs, "pool session not welcomed");
  }

  /** The id the coordinator knows a hosted client by. */
  clientId(index: number): string {
    return virtualClientId(this.options.identity.publicKey, index);
  }

  hosted(): Int32Array {
    return this.hostedSet.all();
  }

  isOffline(index: number): boolean {
    return this.hostedSet.isOffline(index);
  }

  get isGone(): boolean {
    return this.closed || !this.socket.active;
  }

  /** Takes clients offline (the coordinator fails their pending fits); resolves once it has acked. */
  async takeOffline(indices: readonly number[]): Promise<PoolClientRef[]> {
    for (const index of indices) this.hostedSet.setOffline(index, true);
    await this.send("poolLeave", indices);
    return indices.map((index) => ({ index, clientId: this.clientId(index) }));
  }

  /** Brings clients back online; resolves once the coordinator has acked. */
  async bringOnline(indices: readonly number[], timeoutMs = 30_000): Promise<PoolClientRef[]> {
    for (const index of indices) this.hostedSet.setOffline(index, false);
    await withTimeout(this.welcomed, timeoutMs, "pool session not welcomed");
    await this.send("poolJoin", indices);
    return indices.map((index) => ({ index, clientId: this.clientId(index) }));
  }

  /**
   * Hosts exactly these clients from now on: the ones dropped are released (their pending fits
   * fail as disconnects and another session may host them), the new ones join online.
   */
  async setHosted(clientIndices: readonly number[]): Promise<{ released: number[]; added: number[] }> {
    const { released, added } = this.hostedSet.replace(clientIndices);
    await this.send("poolLeave", released, true);
    await this.send("poolJoin", added);
    return { released, added };
  }

  close(): void {
    this.closed = true;
    this.socket.io.reconnection(false);
    this.socket.disconnect();
    this.failWelcome(new FedsimError(ErrorCode.CLIENT_DISCONNECTED, "pool closed"));
    this.workbench.dispose();
  }

  private nextWelcome(): Promise<void> {
    const welcomed = new Promise<void>((resolve, reject) => {
      this.markWelcomed = resolve;
      this.failWelcome = reject;
    });
    welcomed.catch(() => undefined);
    return welcomed;
  }

  private async handshake(): Promise<void> {
    const { identity, token } = this.options;
    try {
      const hello = await this.socket.timeout(30_000).emitWithAck("hello", {
        protocolVersion: PROTOCOL_VERSION,
        publicKey: encodePublicKey(identity.publicKey),
        ...(token ? { token } : {}),
        label: `pool of ${this.hostedSet.size}`,
        pool: true,
      });
      if (!hello.ok) throw new FedsimError(hello.code, hello.message);
      if (!hello.challenge)
        throw new FedsimError(ErrorCode.UNAUTHORIZED, "the coordinator did not challenge the pool's key");
      const proof = await this.socket
        .timeout(30_000)
        .emitWithAck("prove", { signature: signChallenge(identity, new Uint8Array(hello.challenge)) });
      if (!proof.ok) throw new FedsimError(proof.code, proof.message);
      this.model = proof.model;
      this.maxPayloadBytes = proof.maxPayloadBytes;
      // A new session: the coordinator sends weights afresh, frozen tensors included.
      this.versions.clear();
      this.frozen = undefined;
      const online = this.hostedSet.online();
      await this.send("poolJoin", online);
      this.log(`pool session open: ${online.length} of ${this.hostedSet.size} clients online`);
      this.markWelcomed();
    } catch (err) {
      this.log(`pool handshake failed: ${describeError(err)}`);
      if (err instanceof FedsimError) {
        this.failWelcome(err);
        this.close();
      }
    }
  }

  private async send(
    event: "poolJoin" | "poolLeave",
    indices: readonly number[],
    release = false,
  ): Promise<void> {
    if (indices.length === 0 || !this.socket.connected) return;
    const reply: Ack<{ online: number }> = await this.socket
      .timeout(60_000)
      .emitWithAck(event, { indices: encodeIndices(indices), ...(release ? { release } : {}) });
    if (!reply.ok) throw new FedsimError(reply.code, `${event} refused: ${reply.message}`);
  }

  private onWeights(raw: unknown): void {
    const parsed = safeParseUntrusted(poolWeightsSchema, raw);
    if (!parsed.success) {
      this.log(`poolWeights refused: ${formatZodIssues(parsed.error).join("; ")}`);
      return;
    }
    const { version, weights, frozen } = parsed.data;
    this.versions.set(version, toFlat(weights));
    // The coordinator forgets the oldest version beyond the same bound, in the same order.
    if (this.versions.size > POOL_WEIGHT_VERSIONS)
      this.versions.delete(this.versions.keys().next().value as number);
    if (frozen) this.frozen = toFlat(frozen);
  }

  private async onFit(raw: unknown): Promise<void> {
    const parsed = safeParseUntrusted(poolFitSchema, raw);
    if (!parsed.success) {
      this.log(`poolFit refused: ${formatZodIssues(parsed.error).join("; ")}`);
      return;
    }
    const ins = parsed.data;
    const connection = this.connection;
    const { scenario } = this.options;
    try {
      this.hostedSet.position(ins.index);
      const weights = this.versions.get(ins.version);
      if (!weights) throw new FedsimError(ErrorCode.BAD_PAYLOAD, `no weights version ${ins.version} here`);
      if (!this.model) throw new FedsimError(ErrorCode.INTERNAL, "fit before the session opened");
      const behaviour = scenarioBehaviour(scenario, ins.index, this.attackers, this.network);
      if (behaviour.dropInRound?.(ins.round)) {
        await this.dropOut(ins.index, ins.round);
        return;
      }
      const frozen = this.frozen;
      const result = await runLocalFit(
        { ...ins, weights, ...(frozen ? { frozen } : {}), bytesIn: weights.values.byteLength },
        {
          model: this.model,
          workbench: this.workbench,
          data: () => this.trainingData(ins.index).train,
          seed: deriveSeed(scenario.seed, "client", ins.index),
          repeat: this.repeats.next(ins.round, ins.index),
          behaviour,
          sleep: this.options.sleep ?? realSleep,
          noise: cryptoNormalSource(),
          maxPayloadBytes: this.maxPayloadBytes,
          abandoned: () =>
            this.cancelled.has(ins.nonce)
              ? "cancelled by the coordinator"
              : connection !== this.connection || !this.hostedSet.has(ins.index) || this.isOffline(ins.index)
                ? "the client went offline"
                : null,
          log: (line) => this.log(`client-${ins.index}: ${line}`),
        },
      );
      if (!result) return;
      const ack = await this.socket
        .timeout(Math.max(ins.deadlineMs, 30_000))
        .emitWithAck("poolFitResult", { ...result.message, index: ins.index });
      this.workbench.recycleDelta(result.delta);
      this.fitsSent++;
      if (!ack.ok)
        this.log(`client-${ins.index}: round ${ins.round}: update refused: ${ack.code}: ${ack.message}`);
    } catch (err) {
      if (err instanceof FedsimError && err.code === ErrorCode.CANCELLED) return;
      this.log(`client-${ins.index}: round ${ins.round}: fit failed: ${describeError(err)}`);
      if (this.socket.connected) {
        this.socket.emit("poolFitError", {
          index: ins.index,
          round: ins.round,
          nonce: ins.nonce,
          code: codeOf(err),
          message: describeError(err).slice(0, 2000),
        });
      }
    } finally {
      this.cancelled.delete(ins.nonce);
    }
  }

  /** A scripted dropout: the client leaves (failing its fit) and comes back shortly after. */
  private async dropOut(index: number, round: number): Promise<void> {
    this.log(`client-${index}: round ${round}: dropping out (scenario)`);
    await this.send("poolLeave", [index]);
    setTimeout(() => {
      if (this.hostedSet.has(index) && !this.isOffline(index) && !this.closed)
        void this.send("poolJoin", [index]).catch(() => undefined);
    }, 200);
  }

  private async onEvaluate(raw: unknown): Promise<EvaluateReply> {
    const parsed = safeParseUntrusted(poolEvaluateSchema, raw);
    if (!parsed.success) {
      throw new FedsimError(
        ErrorCode.BAD_PAYLOAD,
        `poolEvaluate: ${formatZodIssues(parsed.error).join("; ")}`,
      );
    }
    const ins = parsed.data;
    this.hostedSet.position(ins.index);
    const weights = this.versions.get(ins.version);
    if (!weights || !this.model)
      throw new FedsimError(ErrorCode.BAD_PAYLOAD, `no weights version ${ins.version} here`);
    const data = this.trainingData(ins.index);
    const result = await this.workbench.evaluate(
      this.model,
      data.heldOut ?? data.train,
      weights,
      this.frozen,
      ins.round,
    );
    return {
      numExamples: result.numExamples,
      loss: result.loss,
      accuracy: result.accuracy,
      ...(result.metrics ? { metrics: result.metrics } : {}),
    };
  }

  /** A client's data, materialised now: its part, its held-out share, label-flipped if it attacks so. */
  private trainingData(index: number): { train: Dataset; heldOut?: Dataset } {
    if (!this.data) throw new FedsimError(ErrorCode.INTERNAL, "pool not started");
    const { scenario } = this.options;
    const part = clientData(this.data.table, this.data.train, index);
    const holdout = scenario.evaluation.federated?.holdout;
    const split = holdout ? holdOut(part, holdout) : { train: part, heldOut: undefined };
    const poisoned = this.attackers.has(index) && scenario.attackers?.attack === "labelFlip";
    const train = poisoned ? labelFlippedCopy(split.train) : split.train;
    return { train, ...(split.heldOut ? { heldOut: split.heldOut } : {}) };
  }

  private log(line: string): void {
    this.options.log?.(line);
  }
}

function codeOf(err: unknown): ErrorCode {
  return err instanceof FedsimError ? err.code : ErrorCode.INTERNAL;
}

function toFlat(wire: { specs: FlatWeights["specs"]; data: Uint8Array }): FlatWeights {
  return { specs: wire.specs, values: bytesToFloat32(wire.data) };
}

async function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new FedsimError(ErrorCode.CLIENT_TIMEOUT, `${what} within ${ms} ms`)),
      ms,
    );
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}
