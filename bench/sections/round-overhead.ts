import { randomBytes } from "node:crypto";
import type { LocalFitInput, LocalFitOutput } from "../../client/local-fit-types.js";
import { ClientNode } from "../../client/node.js";
import { ModelWorkbench } from "../../client/workbench.js";
import { subset } from "../../common/data/dataset.js";
import { loadEmbeddedMnist } from "../../common/data/mnist.js";
import type { ModelDescriptor } from "../../common/protocol.js";
import { deriveSeed } from "../../common/rng.js";
import { FedAvg } from "../../common/strategy/fedavg.js";
import { initBackend } from "../../common/tf/backend.js";
import type { TrainData } from "../../common/train/trainer.js";
import { totalSize } from "../../common/weights.js";
import { simulatedIdentity } from "../../scenarios/sim/pool.js";
import { startCoordinator } from "../../server/coordinator.js";
import { median, sig } from "../timing.js";
import { type PhaseEvent, phaseSeconds, type RoundSample, summariseRoundOverhead } from "./overhead.js";
import { measureRawRound } from "./transfer.js";

/**
 * What a federated round costs beyond training: 10 clients and the FedAvg CNN (1,663,370
 * parameters, 6.65 MB each way per client), a real coordinator and real ClientNodes over
 * Socket.IO on loopback, all in this process. Each client trains one SGD step on 2 examples, so
 * the round is almost all framework: sending the model, decoding, copying weights in and out of
 * the model, encoding and validating updates, aggregation and a 20-example evaluation.
 *
 * The clients share one ModelWorkbench, which trains them one after another, so the training the
 * round waits for is every client's training (the "serial" layout), not only the slowest's; both
 * figures are recorded. Each client's training time is the trainer's own measure (the `seconds`
 * of its fit metrics), taken by wrapping the workbench, so it does not depend on what the round
 * record carries.
 *
 * The reference moves the same bytes the same way with plain Socket.IO (measureRawRound), timed
 * before and after the rounds, keeping the faster median.
 */
export interface RoundOverheadSection {
  /** overheadSeconds ÷ rawTransferSeconds (medians over the timed rounds); goal ≤ 1.5. */
  ratio: number | null;
  roundSeconds: number | null;
  slowestTrainSeconds: number | null;
  totalTrainSeconds: number | null;
  /** The training subtracted: all of it, since the in-process clients train one after another. */
  criticalTrainSeconds: number | null;
  overheadSeconds: number | null;
  rawTransferSeconds: number | null;
  layout: "serial" | "parallel";
  clients: number;
  model: string;
  params: number;
  /** Bytes of one model download (= one update upload), float32 weights. */
  payloadBytes: number;
  examplesPerClient: number;
  /** Test examples the server evaluates after each round (kept small: evaluation is not the point). */
  testExamples: number;
  backend: string;
  timedRounds: number;
  warmupRounds: number;
  /** Median seconds of each round-loop phase over the timed rounds. */
  phases: Record<string, number>;
  /** Sum of the clients' trainSeconds from the round record, when the record carries them (a cross-check). */
  recordTrainSeconds: number | null;
}

const CLIENTS = 10;
const MODEL = "mnist-cnn";
const EXAMPLES_PER_CLIENT = 2;
const TEST_EXAMPLES = 20;
const SEED = 11;

/** Times every fit, by round; the round is set by the coordinator's phase events. */
class TimedWorkbench extends ModelWorkbench {
  currentRound = 0;
  readonly trainSeconds = new Map<number, number[]>();

  override async fit(
    descriptor: ModelDescriptor,
    data: TrainData,
    input: LocalFitInput,
  ): Promise<LocalFitOutput> {
    const round = this.currentRound;
    const output = await super.fit(descriptor, data, input);
    const list = this.trainSeconds.get(round) ?? [];
    list.push(output.metrics.seconds);
    this.trainSeconds.set(round, list);
    return output;
  }
}

/** clients[].trainSeconds of a round record, once the round loop records them; null before. */
function recordedTrainSeconds(record: unknown): number[] | null {
  const clients = (record as { clients?: { trainSeconds?: unknown }[] }).clients;
  if (!Array.isArray(clients)) return null;
  const seconds = clients.map((c) => c.trainSeconds).filter((s): s is number => typeof s === "number");
  return seconds.length > 0 ? seconds : null;
}

export async function runRoundOverhead(options: {
  quick: boolean;
  log: (line: string) => void;
}): Promise<RoundOverheadSection> {
  const { quick, log } = options;
  const warmupRounds = 1;
  const timedRounds = quick ? 2 : 5;
  const rawRepeats = quick ? 3 : 7;
  const backend = await initBackend("auto");
  const mnist = loadEmbeddedMnist();
  const parts = Array.from({ length: CLIENTS }, (_, c) =>
    subset(
      mnist.train,
      Array.from({ length: EXAMPLES_PER_CLIENT }, (_, i) => c * EXAMPLES_PER_CLIENT + i),
    ),
  );
  const testData = subset(
    mnist.test,
    Array.from({ length: TEST_EXAMPLES }, (_, i) => i),
  );

  const events: PhaseEvent[] = [];
  const roundEnds = new Map<number, number>();
  const workbench = new TimedWorkbench();
  const token = randomBytes(16).toString("hex");
  const coordinator = await startCoordinator({
    host: "127.0.0.1",
    port: 0,
    rounds: warmupRounds + timedRounds,
    model: MODEL,
    testData,
    strategy: new FedAvg({
      minFitClients: CLIENTS,
      fitConfig: { epochs: 1, batchSize: EXAMPLES_PER_CLIENT, learningRate: 0.01, maxSteps: 1 },
    }),
    deadlineMs: 300_000,
    minAvailableClients: CLIENTS,
    seed: SEED,
    backend: "auto",
    auth: { kind: "token", token },
    onPhase: (round, phase) => {
      events.push({ round, phase, at: performance.now() });
      workbench.currentRound = round;
    },
    onRound: (record) => {
      roundEnds.set(record.round, performance.now());
    },
  });
  const params = totalSize(coordinator.loop.globalWeights.specs);
  const payloadBytes = params * 4;
  log("roundOverhead: raw Socket.IO round (before)…");
  const rawBefore = await measureRawRound({
    clients: CLIENTS,
    modelBytes: payloadBytes,
    updateBytes: payloadBytes,
    repeats: rawRepeats,
  });

  const nodes = parts.map(
    (data, c) =>
      new ClientNode({
        url: coordinator.url,
        data,
        workbench,
        identity: simulatedIdentity(SEED, c),
        label: `client-${c}`,
        seed: deriveSeed(SEED, "client", c),
        token,
        reconnect: false,
      }),
  );
  let result: Awaited<ReturnType<typeof coordinator.run>>;
  try {
    await Promise.all(nodes.map((n) => n.ready));
    log(
      `roundOverhead: ${warmupRounds} + ${timedRounds} rounds of ${CLIENTS} clients, ${MODEL} on ${backend.name}…`,
    );
    result = await coordinator.run();
  } finally {
    for (const n of nodes) n.close();
    await coordinator.close();
    workbench.dispose();
  }

  log("roundOverhead: raw Socket.IO round (after)…");
  const rawAfter = await measureRawRound({
    clients: CLIENTS,
    modelBytes: payloadBytes,
    updateBytes: payloadBytes,
    repeats: rawRepeats,
  });
  const rawTransferSeconds = Math.min(rawBefore.seconds, rawAfter.seconds);

  const timed = result.rounds.filter((r) => r.round > warmupRounds);
  const failed = timed.find((r) => r.participants !== CLIENTS);
  if (failed !== undefined) {
    throw new Error(
      `round ${failed.round} had ${failed.participants} of ${CLIENTS} clients: ` +
        (failed.failureDetails.map((f) => `${f.clientId} ${f.reason}`).join(", ") || failed.kept || "?"),
    );
  }
  const samples: RoundSample[] = timed.map((r) => ({
    round: r.round,
    roundSeconds: r.seconds,
    trainSeconds: workbench.trainSeconds.get(r.round) ?? [],
  }));
  const summary = summariseRoundOverhead(samples, rawTransferSeconds, "serial");
  const perPhase = timed.map((r) => phaseSeconds(events, r.round, roundEnds.get(r.round)));
  const phases: Record<string, number> = {};
  for (const phase of new Set(perPhase.flatMap((p) => Object.keys(p)))) {
    phases[phase] = sig(median(perPhase.map((p) => p[phase] ?? 0)), 3) ?? 0;
  }
  const recorded = timed.map((r) => recordedTrainSeconds(r));
  log(
    `roundOverhead: round ${summary.roundSeconds.toFixed(3)} s, training ${summary.totalTrainSeconds.toFixed(3)} s, ` +
      `raw transfer ${rawTransferSeconds.toFixed(3)} s, ratio ${summary.ratio?.toFixed(2) ?? "–"}`,
  );
  return {
    ratio: sig(summary.ratio, 3),
    roundSeconds: sig(summary.roundSeconds),
    slowestTrainSeconds: sig(summary.slowestTrainSeconds),
    totalTrainSeconds: sig(summary.totalTrainSeconds),
    criticalTrainSeconds: sig(summary.criticalTrainSeconds),
    overheadSeconds: sig(summary.overheadSeconds),
    rawTransferSeconds: sig(rawTransferSeconds),
    layout: summary.layout,
    clients: CLIENTS,
    model: MODEL,
    params,
    payloadBytes,
    examplesPerClient: EXAMPLES_PER_CLIENT,
    testExamples: TEST_EXAMPLES,
    backend: backend.name,
    timedRounds,
    warmupRounds,
    phases,
    recordTrainSeconds: recorded.every((r) => r !== null)
      ? sig(median(recorded.map((r) => r!.reduce((a, b) => a + b, 0))))
      : null,
  };
}
