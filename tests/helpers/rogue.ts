import { io, type Socket } from "socket.io-client";
import type { ClientNode, ClientNodeOptions } from "../../client/node.js";
import { getFlatWeights } from "../../common/models/tf-weights.js";
import {
  type Ack,
  type FitInstructions,
  type FitResultMessage,
  PROTOCOL_VERSION,
  type Welcome,
} from "../../common/protocol.js";
import { weightedMean } from "../../common/strategy/aggregate.js";
import { FedAvg } from "../../common/strategy/fedavg.js";
import { type FlatWeights, float32ToBytes, totalSize } from "../../common/weights.js";
import type { FitOutcome, FitSuccess } from "../../server/client-proxy.js";
import type { CoordinatorHandle, CoordinatorOptions } from "../../server/coordinator.js";
import { PATIENCE_MS } from "./eventually.js";
import { smallMnist, startClients, startTestCoordinator } from "./federation.js";

/**
 * A hand-driven Socket.IO client that speaks the wire protocol without any of ClientNode's
 * care: it sends exactly what a test crafts (wrong versions, tokens, rounds, bytes), so each
 * test can put one kind of bad message in front of a real coordinator.
 */
export class RogueClient {
  /** Untyped on purpose: a hostile client is not bound by the event maps. */
  readonly socket: Socket;
  readonly fits: FitInstructions[] = [];
  readonly cancels: { round: number; nonce: string; reason: string }[] = [];
  clientId = "";
  welcome: Welcome | null = null;
  private fitsTaken = 0;
  private readonly listeners = new Set<() => void>();
  private disconnectReason: string | null = null;

  private constructor(url: string) {
    this.socket = io(url, { transports: ["websocket"], reconnection: false, forceNew: true });
    this.socket.on("fit", (ins: FitInstructions) => {
      this.fits.push(ins);
      this.notify();
    });
    this.socket.on("cancel", (info: { round: number; nonce: string; reason: string }) => {
      this.cancels.push(info);
      this.notify();
    });
    this.socket.on("disconnect", (reason: string) => {
      this.disconnectReason = reason;
      this.notify();
    });
  }

  /** Connects (transport only: no hello yet). */
  static async connect(url: string): Promise<RogueClient> {
    const rogue = new RogueClient(url);
    await new Promise<void>((resolve, reject) => {
      rogue.socket.once("connect", () => resolve());
      rogue.socket.once("connect_error", (err: Error) => reject(err));
    });
    return rogue;
  }

  /** Says hello; `fields` override (or add to) a correct hello. Answers a challenge with nothing. */
  async hello(fields: Record<string, unknown> = {}): Promise<Ack<Welcome>> {
    const reply = (await this.socket.timeout(PATIENCE_MS).emitWithAck("hello", {
      protocolVersion: PROTOCOL_VERSION,
      label: "rogue",
      ...fields,
    })) as Ack<Welcome>;
    if (reply.ok) {
      this.welcome = reply;
      this.clientId = reply.clientId;
    }
    return reply;
  }

  /** Sends any payload as a fitResult and waits for the coordinator's ack. */
  async sendResult(message: unknown): Promise<Ack> {
    return (await this.socket.timeout(PATIENCE_MS).emitWithAck("fitResult", message)) as Ack;
  }

  /** The next fit request not yet taken by a test (waits for it if none is buffered). */
  async nextFit(): Promise<FitInstructions> {
    await this.until(() => this.fits.length > this.fitsTaken);
    return this.fits[this.fitsTaken++];
  }

  async cancelled(nonce: string): Promise<void> {
    await this.until(() => this.cancels.some((c) => c.nonce === nonce));
  }

  /** Resolves with Socket.IO's reason once the connection is gone. */
  async disconnected(): Promise<string> {
    await this.until(() => this.disconnectReason !== null);
    return this.disconnectReason ?? "";
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

export const FAKE_METRICS = { loss: 1, accuracy: 0.1, steps: 1, epochsCompleted: 1, seconds: 0.01 };

/** A well-formed answer to `ins` whose delta is `values` (all zeros by default). */
export function craftResult(
  ins: FitInstructions,
  values: Float32Array = new Float32Array(totalSize(ins.weights.specs)),
  numExamples = 100,
): FitResultMessage {
  return {
    round: ins.round,
    nonce: ins.nonce,
    update: {
      numExamples,
      delta: { specs: ins.weights.specs, data: float32ToBytes(values) },
      metrics: FAKE_METRICS,
    },
  };
}

export interface RogueFederation {
  coordinator: CoordinatorHandle;
  honest: ClientNode[];
  /** Every client's outcome, as the round loop saw it arrive. */
  outcomes: FitOutcome[];
  /** The global model before any round. */
  initial: FlatWeights;
  logs: string[];
  /** Connects a rogue and says a correct hello (asserting it is admitted). */
  admitRogue(fields?: Record<string, unknown>): Promise<RogueClient>;
  close(): Promise<void>;
}

export interface RogueFederationOptions {
  honest?: number;
  perClient?: number;
  /** Clients the first round waits for: the honest ones plus this many rogues (default 1). */
  rogues?: number;
  coordinator?: Partial<CoordinatorOptions>;
  honestOptions?: (i: number) => Partial<ClientNodeOptions>;
}

/**
 * One coordinator (tiny-mlp, cpu, one round by default) and `honest` real ClientNodes, ready;
 * the first round starts once the rogues have joined too.
 */
export async function startRogueFederation(options: RogueFederationOptions = {}): Promise<RogueFederation> {
  const honestCount = options.honest ?? 2;
  const { parts, test } = await smallMnist(honestCount, options.perClient ?? 150, 200);
  const logs: string[] = [];
  const outcomes: FitOutcome[] = [];
  const coordinator = await startTestCoordinator(
    test,
    {
      rounds: 1,
      minAvailableClients: honestCount + (options.rogues ?? 1),
      strategy: new FedAvg({ fitConfig: { epochs: 1, batchSize: 10, learningRate: 0.1 }, minFitClients: 1 }),
      onClientOutcome: (_round, outcome) => outcomes.push(outcome),
      ...options.coordinator,
    },
    logs,
  );
  const initial = getFlatWeights(coordinator.model);
  const honest = startClients(coordinator.url, parts, options.honestOptions, logs);
  const rogues: RogueClient[] = [];
  try {
    await Promise.all(honest.map((c) => c.ready));
  } catch (err) {
    for (const c of honest) c.close();
    await coordinator.close();
    throw err;
  }
  return {
    coordinator,
    honest,
    outcomes,
    initial,
    logs,
    async admitRogue(fields = {}) {
      const rogue = await RogueClient.connect(coordinator.url);
      rogues.push(rogue);
      const reply = await rogue.hello(fields);
      if (!reply.ok) throw new Error(`rogue was not admitted: ${reply.code}: ${reply.message}`);
      return rogue;
    },
    async close() {
      for (const r of rogues) r.close();
      for (const c of honest) c.close();
      await coordinator.close();
    },
  };
}

/**
 * What FedAvg must have produced from the accepted updates alone: initial + the example-weighted
 * mean of the successes' deltas. Returns the largest absolute difference from `actual`.
 */
export function maxDeviationFromAggregate(
  initial: FlatWeights,
  successes: readonly FitSuccess[],
  actual: FlatWeights,
): number {
  const mean = weightedMean(
    successes.map((s) => s.delta),
    successes.map((s) => s.numExamples ?? Number.NaN),
  );
  let worst = 0;
  for (let i = 0; i < initial.values.length; i++) {
    const expected = initial.values[i] + mean[i];
    const diff = Math.abs(expected - actual.values[i]);
    // NaN must count as the worst possible deviation.
    worst = Number.isNaN(diff) ? Number.POSITIVE_INFINITY : Math.max(worst, diff);
  }
  return worst;
}

export function successesOf(outcomes: readonly FitOutcome[]): FitSuccess[] {
  return outcomes.filter((o): o is FitSuccess => o.ok);
}
