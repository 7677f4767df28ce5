import { io, type Socket } from "socket.io-client";
import { describeConnectError } from "../common/connect-errors.js";
import { signChallenge } from "../common/crypto/auth.js";
import { encodePublicKey, type Identity } from "../common/crypto/identity.js";
import { encodeWeightedVector } from "../common/crypto/secagg/weighted-vector.js";
import { cryptoNormalSource, type NormalSource } from "../common/dp/noise.js";
import { describeError, ErrorCode, FedsimError } from "../common/errors.js";
import { lenientParser } from "../common/net/lenient-parser.js";
import {
  type Ack,
  type ClientToServerEvents,
  type EvaluateReply,
  evaluateInstructionsSchema,
  type FitInstructions,
  fitInstructionsSchema,
  formatZodIssues,
  type ModelDescriptor,
  PROTOCOL_VERSION,
  type ServerToClientEvents,
  safeParseUntrusted,
  type Welcome,
} from "../common/protocol.js";
import type { TrainData } from "../common/train/trainer.js";
import { bytesToFloat32, type FlatWeights } from "../common/weights.js";
import { fromWire, toWire } from "../common/wire-json.js";
import { type ClientBehaviour, FitRepeats, runLocalFit } from "./local-fit.js";
import { type Reconnector, type RetryPolicy, reconnectWith } from "./reconnect.js";
import { type RoundReport, roundReport } from "./round-report.js";
import { ClientSecAgg } from "./secagg-session.js";
import { WelcomeWaiters } from "./welcome-waiters.js";
import type { ModelWorkbench } from "./workbench.js";

export type ClientSocket = Socket<ServerToClientEvents, ClientToServerEvents>;

export type { ClientBehaviour };

export interface ClientNodeOptions {
  url: string;
  data: TrainData;
  /** Federated evaluation scores on this (a held-out part of the node's data); default: `data`. */
  evalData?: TrainData;
  workbench: ModelWorkbench;
  identity?: Identity;
  token?: string;
  label?: string;
  /**
   * Tell the coordinator the training set's size at hello, so it refuses any larger numExamples
   * in this client's name. Off by default: the hello is not sealed, and under DP or secure
   * aggregation the size is something the updates themselves no longer show (docs/PRIVACY.md).
   */
  declareExamples?: boolean;
  seed?: number;
  /** TLS: a CA certificate (PEM) to trust in addition to the system's. */
  ca?: string;
  behaviour?: ClientBehaviour;
  noise?: NormalSource;
  log?: (line: string) => void;
  /** Reconnect after a dropped connection (default true). */
  reconnect?: boolean;
  /**
   * Bounded reconnects, each announced ("retry k/N in T s"), instead of Socket.IO's endless
   * jittered ones; when they run out, `ready` and `finished` reject with COORDINATOR_UNREACHABLE.
   */
  retry?: RetryPolicy;
  /** Called once per update sent, with what this node did in the round (its log line). */
  onRound?: (report: RoundReport) => void;
  /** How the node waits out scripted delays; tests inject a recorder. Default: setTimeout. */
  sleep?: (ms: number) => Promise<void>;
}

const realSleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/**
 * A client node: connects, says hello (and proves its identity when it has one), then trains on
 * every fit request and sends back its update. Reconnects on its own, unless taken offline with
 * `disconnect()` (until `connect()`) or closed for good with `close()`.
 */
export class ClientNode {
  readonly socket: ClientSocket;
  private readonly options: ClientNodeOptions;
  private welcome: Welcome | null = null;
  private model: ModelDescriptor | null = null;
  private frozen: FlatWeights | undefined;
  /**
   * Fits being handled, by nonce, and whether the coordinator has cancelled each. A cancel for any
   * other nonce is dropped, so the map never holds more than the fits in flight.
   */
  private readonly fitsInFlight = new Map<string, { cancelled: boolean }>();
  private readonly secagg = new ClientSecAgg();
  /** Fits started per round, so a second fit on the same round trains with its own seed. */
  private readonly repeats = new FitRepeats();
  private readyResolve: ((id: string) => void) | null = null;
  private readyReject: ((err: Error) => void) | null = null;
  readonly ready: Promise<string>;
  /** Settles when the node is done for good: resolves on close (or the coordinator's shutdown), rejects on giving up. */
  readonly finished: Promise<void>;
  private finish: { resolve: () => void; reject: (err: Error) => void } = {
    resolve: () => {},
    reject: () => {},
  };
  private readonly reconnector: Reconnector | undefined;
  /** Waiters for the next welcome, from `connect()`. */
  private readonly welcomeWaiters = new WelcomeWaiters();
  private welcomed = false;
  private offline = false;
  private closed = false;
  /** Bumped on every disconnect, so a fit that began on an earlier connection is not sent. */
  private connection = 0;
  clientId = "";
  roundsTrained = 0;
  lastAck: Ack | null = null;

  constructor(options: ClientNodeOptions) {
    this.options = options;
    this.ready = new Promise((resolve, reject) => {
      this.readyResolve = resolve;
      this.readyReject = reject;
    });
    this.finished = new Promise((resolve, reject) => {
      this.finish = { resolve, reject };
    });
    // Avoid an unhandled rejection when nobody awaits `ready` or `finished`.
    this.ready.catch(() => undefined);
    this.finished.catch(() => undefined);
    this.socket = io(options.url, {
      transports: ["websocket"],
      reconnection: options.retry ? false : (options.reconnect ?? true),
      reconnectionDelay: 500,
      reconnectionDelayMax: 5000,
      ...(options.ca ? { ca: options.ca } : {}),
      parser: lenientParser,
    });
    this.socket.on("connect", () => void this.handshake());
    if (options.retry) {
      this.reconnector = reconnectWith(this.socket, options.url, options.retry, {
        wanted: () => !this.offline && !this.closed,
        log: (line) => this.log(line),
        giveUp: (err) => {
          this.readyReject?.(err);
          this.finish.reject(err);
          this.close();
        },
      });
    } else {
      this.socket.on("connect_error", (err) => this.log(`connect: ${describeConnectError(err)}`));
    }
    this.socket.on("disconnect", (reason, description) => {
      this.welcomed = false;
      this.connection++;
      this.log(`disconnected: ${reason}${description instanceof Error ? ` (${description.message})` : ""}`);
    });
    this.socket.on("fit", (ins) => void this.trackFit(ins));
    this.socket.on("cancel", (info) => {
      const fit = this.fitsInFlight.get(info?.nonce);
      if (fit) fit.cancelled = true;
    });
    this.socket.on("evaluate", (ins, ack) => {
      if (typeof ack !== "function") return;
      this.onEvaluate(ins)
        .then((reply) => ack({ ok: true, ...reply }))
        .catch((err) =>
          ack({
            ok: false,
            code: err instanceof FedsimError ? err.code : ErrorCode.INTERNAL,
            message: describeError(err),
          }),
        );
    });
    this.socket.on("secagg", (stage, payload, ack) => {
      if (typeof ack !== "function") return;
      // The coordinator may sample us before our handshake's ack has arrived here.
      this.ready
        .then((clientId) => this.secagg.handle(clientId, stage, fromWire(payload)))
        .then((message) => ack(toWire({ ok: true, message })))
        .catch((err) =>
          ack({
            ok: false,
            code: err instanceof FedsimError ? err.code : ErrorCode.SECAGG_PROTOCOL,
            message: describeError(err),
          }),
        );
    });
    this.socket.on("shutdown", (info) => {
      this.log(`coordinator shut down: ${info?.reason}`);
      this.close();
    });
  }

  /** Leaves for good: no reconnection, and `connect()` refuses. */
  close(): void {
    this.closed = true;
    this.reconnector?.stop();
    this.finish.resolve();
    this.socket.io.reconnection(false);
    this.socket.disconnect();
    this.welcomeWaiters.rejectAll(new FedsimError(ErrorCode.CLIENT_DISCONNECTED, "client closed"));
  }

  /**
   * Goes offline and stays so until `connect()`: the socket closes (the coordinator sees a
   * disconnect, failing any fit in flight), and no automatic reconnection follows.
   */
  disconnect(): void {
    this.offline = true;
    this.socket.disconnect();
    this.welcomeWaiters.rejectAll(
      new FedsimError(ErrorCode.CLIENT_DISCONNECTED, "taken offline before welcomed"),
    );
  }

  /**
   * Comes back online under the same identity, so the coordinator knows it as the same client;
   * resolves with the client id once welcomed again.
   */
  connect(timeoutMs = 30_000): Promise<string> {
    if (this.closed) {
      return Promise.reject(new FedsimError(ErrorCode.CLIENT_DISCONNECTED, "connect after close"));
    }
    this.offline = false;
    if (this.welcomed && this.socket.connected) return Promise.resolve(this.clientId);
    const welcomed = this.welcomeWaiters.wait(timeoutMs);
    // Still trying to reconnect on its own: the welcome will come without a push.
    if (!this.socket.active) this.socket.connect();
    return welcomed;
  }

  /** Fits this node is handling right now (what its cancel bookkeeping holds). */
  get fitsPending(): number {
    return this.fitsInFlight.size;
  }

  /** Online: connected and welcomed by the coordinator. */
  get isOnline(): boolean {
    return this.welcomed && this.socket.connected;
  }

  /** Taken offline by `disconnect()` and not yet back. */
  get isOffline(): boolean {
    return this.offline;
  }

  /** Will never connect again on its own: closed, refused, or sent away by the coordinator. */
  get isGone(): boolean {
    return this.closed || (!this.offline && !this.socket.active);
  }

  private log(line: string): void {
    this.options.log?.(`${this.clientId || this.options.label || "client"}: ${line}`);
  }

  private async handshake(): Promise<void> {
    const { identity, token, label, declareExamples, data } = this.options;
    try {
      const reply = await this.socket.timeout(30_000).emitWithAck("hello", {
        protocolVersion: PROTOCOL_VERSION,
        ...(identity ? { publicKey: encodePublicKey(identity.publicKey) } : {}),
        ...(token ? { token } : {}),
        ...(label ? { label } : {}),
        ...(declareExamples === true && data.n > 0 ? { numExamples: data.n } : {}),
        capabilities: { envelope: identity !== undefined, secagg: true },
      });
      if (!reply.ok) throw new FedsimError(reply.code, reply.message);
      let welcome: Welcome = reply;
      if (reply.challenge) {
        if (!identity)
          throw new FedsimError(
            ErrorCode.UNAUTHORIZED,
            "coordinator sent a challenge but this client has no identity",
          );
        const proof = await this.socket
          .timeout(30_000)
          .emitWithAck("prove", { signature: signChallenge(identity, new Uint8Array(reply.challenge)) });
        if (!proof.ok) throw new FedsimError(proof.code, proof.message);
        welcome = proof;
      }
      const clientId = welcome.clientId;
      this.welcome = welcome;
      this.model = welcome.model;
      this.frozen = undefined;
      this.clientId = clientId;
      this.welcomed = true;
      this.log(`connected as ${clientId}`);
      this.readyResolve?.(clientId);
      this.welcomeWaiters.resolveAll(clientId);
    } catch (err) {
      this.log(`handshake failed: ${describeError(err)}`);
      const error = err instanceof Error ? err : new Error(String(err));
      this.readyReject?.(error);
      if (err instanceof FedsimError) {
        this.welcomeWaiters.rejectAll(error);
        this.finish.reject(error);
        this.close();
      }
    }
  }

  /** Federated evaluation: the global model on this node's evaluation data (its held-out part). */
  private async onEvaluate(raw: unknown): Promise<EvaluateReply> {
    await this.ready;
    const parsed = safeParseUntrusted(evaluateInstructionsSchema, raw);
    if (!parsed.success) {
      throw new FedsimError(ErrorCode.BAD_PAYLOAD, `evaluate: ${formatZodIssues(parsed.error).join("; ")}`);
    }
    if (!this.model) throw new FedsimError(ErrorCode.INTERNAL, "evaluate before handshake");
    const ins = parsed.data;
    if (ins.frozen) this.frozen = toFlat(ins.frozen);
    const data = this.options.evalData ?? this.options.data;
    const result = await this.options.workbench.evaluate(
      this.model,
      data,
      toFlat(ins.weights),
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

  /** Registers the fit's nonce before anything awaits, so a cancel that follows it is never lost. */
  private async trackFit(raw: unknown): Promise<void> {
    const nonce = (raw as { nonce?: unknown } | null)?.nonce;
    // Without a nonce the instructions are malformed, and onFit says so.
    if (typeof nonce !== "string") return this.onFit(raw, { cancelled: false });
    if (this.fitsInFlight.has(nonce)) {
      this.log(`fit ignored: request ${nonce.slice(0, 64)} is already being handled`);
      return;
    }
    const state = { cancelled: false };
    this.fitsInFlight.set(nonce, state);
    try {
      await this.onFit(raw, state);
    } finally {
      this.fitsInFlight.delete(nonce);
    }
  }

  private async onFit(raw: unknown, state: { readonly cancelled: boolean }): Promise<void> {
    await this.ready.catch(() => undefined);
    const parsed = safeParseUntrusted(fitInstructionsSchema, raw);
    if (!parsed.success) {
      this.log(`fit refused: ${formatZodIssues(parsed.error).join("; ")}`);
      return;
    }
    const ins = parsed.data;
    const behaviour = this.options.behaviour;
    const connection = this.connection;
    try {
      if (!this.model || !this.welcome) throw new FedsimError(ErrorCode.INTERNAL, "fit before handshake");
      if (behaviour?.dropInRound?.(ins.round)) {
        this.log(`round ${ins.round}: dropping out (scenario)`);
        this.socket.disconnect();
        setTimeout(() => {
          if (!this.offline && !this.closed) this.socket.connect();
        }, 200);
        return;
      }
      if (ins.frozen) this.frozen = toFlat(ins.frozen);
      const { weights: _w, frozen: _f, ...rest } = ins;
      const result = await runLocalFit(
        {
          ...rest,
          weights: toFlat(ins.weights),
          ...(this.frozen ? { frozen: this.frozen } : {}),
          bytesIn: ins.weights.data.byteLength + (ins.frozen?.data.byteLength ?? 0),
        },
        {
          model: this.model,
          workbench: this.options.workbench,
          data: this.options.data,
          // Seeded by the node's own seed, not its id, so reruns with fresh identities train identically.
          seed: this.options.seed ?? 0,
          repeat: this.repeats.next(ins.round),
          ...(behaviour ? { behaviour } : {}),
          sleep: this.options.sleep ?? realSleep,
          noise: this.options.noise ?? cryptoNormalSource(),
          ...(this.options.identity ? { identity: this.options.identity } : {}),
          maxPayloadBytes: this.welcome.maxPayloadBytes,
          abandoned: () =>
            state.cancelled
              ? "cancelled by the coordinator"
              : connection !== this.connection
                ? "the connection it came on is gone"
                : null,
          secagg: (fit, update, delta) => ({
            round: fit.round,
            nonce: fit.nonce,
            secagg: {
              masked: this.secagg.mask(
                fit.round,
                encodeWeightedVector(delta, update.numExamples, fit.secagg),
              ),
            },
          }),
          log: (line) => this.log(line),
        },
      );
      if (!result) return;
      const ack = await this.socket
        .timeout(Math.max(ins.deadlineMs, 30_000))
        .emitWithAck("fitResult", result.message);
      this.lastAck = ack;
      // Acknowledged, so the coordinator holds every byte: the array behind the upload is free again.
      this.options.workbench.recycleDelta(result.delta);
      if (!ack.ok) this.log(`round ${ins.round}: update refused: ${ack.code}: ${ack.message}`);
      else this.roundsTrained++;
      this.options.onRound?.(roundReport(ins, result.local, ack));
    } catch (err) {
      if (err instanceof FedsimError && err.code === ErrorCode.CANCELLED) {
        // Queued behind other virtual clients past the round's end: nobody waits for an answer.
        this.log(`round ${ins.round}: ${err.message}`);
        return;
      }
      this.log(`round ${ins.round}: fit failed: ${describeError(err)}`);
      if (this.socket.connected) {
        this.socket.emit("fitError", {
          round: ins.round,
          nonce: ins.nonce,
          code: err instanceof FedsimError ? err.code : ErrorCode.INTERNAL,
          message: describeError(err).slice(0, 2000),
        });
      }
    }
  }
}

function toFlat(wire: FitInstructions["weights"]): FlatWeights {
  // A view, no copy: Socket.IO hands over a buffer of our own, and the workbench copies the values
  // into the model's tensors rather than training on them in place.
  return { specs: wire.specs, values: bytesToFloat32(wire.data) };
}
