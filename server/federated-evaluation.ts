import { describeError, ErrorCode, FedsimError } from "../common/errors.js";
import type { EvaluateReply } from "../common/protocol.js";
import { createRng, deriveSeed, sampleWithoutReplacement } from "../common/rng.js";
import type { MetricsResult } from "../common/strategy/metrics.js";
import type { FailureReason } from "../common/strategy/strategy.js";
import { type FlatWeights, selectTensors } from "../common/weights.js";
import { wireJsonBytes } from "../common/wire-json.js";
import type { ClientDirectory, ClientProxy, EvaluateRequest } from "./client-proxy.js";
import type { RoundLoopOptions } from "./round-options.js";
import type { FederatedEvaluation } from "./round-record.js";
import { bySimulatedArrival, placeExchange } from "./virtual-exchange.js";
import type { VirtualClock } from "./virtual-round.js";

export interface FederatedEvaluationSpec {
  /** The fraction of the connected clients asked. */
  fraction: number;
  /** The wall-clock limit of each answer (on the virtual clock only a safety net). */
  timeoutMs: number;
}

/** Federated evaluation on the virtual clock: when it starts, and who needs no download. */
export interface SimulatedEvaluation {
  clock: VirtualClock;
  /** Simulated seconds at which the requests leave (the round's end so far). */
  sentAt: number;
  /** Clients that already hold the evaluated weights (they trained on them in a round that kept the model). */
  holding?: ReadonlySet<string>;
}

/** One asked client's answer or failure, and when (simulated; 0 on the real clock) the coordinator had it. */
interface Answer {
  clientId: string;
  reply: EvaluateReply | null;
  failure?: { reason: FailureReason; code: string; message: string };
  at: number;
}

/**
 * Asks a seeded sample of the connected clients to score the global model on their own data.
 * Its own RNG stream, so turning it on does not change which clients train. On the virtual clock
 * each answer takes the simulated time of its download, forward passes and reply, within the
 * round's deadline, and the answers are taken in simulated-time order.
 */
export async function evaluateFederated(options: {
  round: number;
  spec: FederatedEvaluationSpec;
  directory: ClientDirectory;
  seed: number;
  model: FlatWeights;
  trainable: ReadonlySet<string>;
  /** The strategy's evaluate-metrics aggregation (Strategy.aggregateEvaluate), if it has one. */
  aggregate?: (results: readonly MetricsResult[]) => Record<string, number>;
  simulated?: SimulatedEvaluation;
  log: (line: string) => void;
}): Promise<FederatedEvaluation> {
  const { round, spec, model, trainable, simulated } = options;
  const connected = options.directory
    .connected()
    .filter((c) => c.evaluate !== undefined)
    .sort((a, b) => (a.id < b.id ? -1 : 1));
  const count = Math.min(connected.length, Math.max(1, Math.ceil(spec.fraction * connected.length)));
  const rng = createRng(deriveSeed(options.seed, "federated-evaluation", round));
  const asked = sampleWithoutReplacement(connected.length, count, rng).map((i) => connected[i]);
  const frozenNames = new Set(model.specs.map((s) => s.name).filter((n) => !trainable.has(n)));
  const request: EvaluateRequest = {
    round,
    weights: selectTensors(model, trainable),
    frozen: frozenNames.size > 0 ? selectTensors(model, frozenNames) : null,
  };
  const settled = await Promise.all(
    asked.map((c) => (simulated ? askSimulated(c, request, spec, simulated) : ask(c, request, spec))),
  );
  const answers = simulated ? settled.sort(bySimulatedArrival) : settled;
  for (const a of answers) {
    if (a.failure) {
      options.log(`round ${round}: federated evaluation by ${a.clientId} failed: ${a.failure.message}`);
    }
  }
  const answered = answers.filter(
    (a): a is Answer & { reply: EvaluateReply } => a.reply !== null && a.reply.numExamples > 0,
  );
  const examples = answered.reduce((n, a) => n + a.reply.numExamples, 0);
  const mean = (value: (r: EvaluateReply) => number) =>
    examples > 0 ? answered.reduce((s, a) => s + value(a.reply) * a.reply.numExamples, 0) / examples : 0;
  const results = answered.map(({ clientId, reply }) => ({
    clientId,
    numExamples: reply.numExamples,
    metrics: { ...reply.metrics, loss: reply.loss, accuracy: reply.accuracy },
  }));
  const metrics = options.aggregate?.(results) ?? {};
  const failures = answers.flatMap(({ clientId, failure }) =>
    failure ? [{ clientId, reason: failure.reason, code: failure.code }] : [],
  );
  return {
    accuracy: mean((r) => r.accuracy),
    loss: mean((r) => r.loss),
    clients: answered.length,
    examples,
    failed: failures.length,
    ...(failures.length > 0 ? { failureDetails: failures } : {}),
    ...(Object.keys(metrics).length > 0 ? { metrics } : {}),
    ...(simulated
      ? {
          simulatedSeconds:
            answers.reduce((end, a) => Math.max(end, a.at), simulated.sentAt) - simulated.sentAt,
        }
      : {}),
  };
}

/**
 * The round loop's federated evaluation, on the rounds its spec names (and always the last);
 * undefined on the others or without a spec.
 */
export async function federatedEvaluationOf(
  o: RoundLoopOptions,
  round: number,
  log: (line: string) => void,
  extra: { simulated?: SimulatedEvaluation },
): Promise<FederatedEvaluation | undefined> {
  const spec = o.federatedEvaluation;
  if (!spec || (round % spec.everyRounds !== 0 && round !== o.rounds)) return undefined;
  const aggregateEvaluate = o.strategy.aggregateEvaluate?.bind(o.strategy);
  return evaluateFederated({
    round,
    spec,
    directory: o.directory,
    seed: o.seed,
    model: o.model,
    trainable: o.trainable,
    ...(aggregateEvaluate ? { aggregate: (results) => aggregateEvaluate(round, results) } : {}),
    ...extra,
    log,
  });
}

/** The real clock: the client's answer, or its failure, within the wall-clock limit. */
async function ask(client: ClientProxy, request: EvaluateRequest, spec: FederatedEvaluationSpec) {
  try {
    return { clientId: client.id, reply: await evaluateOn(client, request, spec.timeoutMs), at: 0 };
  } catch (err) {
    return { clientId: client.id, reply: null, failure: failureOf(err), at: 0 };
  }
}

/**
 * The virtual clock: a client unavailable when the request leaves fails then without evaluating;
 * the others evaluate for real, and their answer lands where the simulated clock puts it. A
 * device's real failure keeps its code, at the time its reply would have come.
 */
async function askSimulated(
  client: ClientProxy,
  request: EvaluateRequest,
  spec: FederatedEvaluationSpec,
  simulated: SimulatedEvaluation,
): Promise<Answer> {
  const { clock, sentAt } = simulated;
  const clientId = client.id;
  if (!clock.timing.isAvailable(clientId, sentAt)) {
    const message = `${ErrorCode.CLIENT_DISCONNECTED}: unavailable at simulated second ${sentAt.toFixed(1)}`;
    return { clientId, reply: null, failure: { ...disconnected, message }, at: sentAt };
  }
  const deadlineAt = sentAt + clock.deadlineSeconds;
  let reply: EvaluateReply | null = null;
  let failure: Answer["failure"];
  try {
    reply = await evaluateOn(client, request, spec.timeoutMs);
  } catch (err) {
    failure = failureOf(err);
    // The wall-clock safety net fired: the simulated coordinator waited until its deadline.
    if (failure.code === ErrorCode.CLIENT_TIMEOUT) return { clientId, reply, failure, at: deadlineAt };
  }
  const placed = placeExchange(
    clock,
    {
      clientId,
      sentAt,
      bytesDown: simulated.holding?.has(clientId) ? 0 : request.weights.values.byteLength,
      bytesUp: reply ? wireJsonBytes({ ok: true, ...reply }) : 0,
      evaluatedExamples: reply?.numExamples ?? 0,
    },
    deadlineAt,
    "federated evaluation",
  );
  if (!placed.ok) {
    const { reason, code, message } = placed;
    return {
      clientId,
      reply: null,
      failure: { reason, code, message: `${code}: ${message}` },
      at: placed.at,
    };
  }
  return { clientId, reply, ...(failure ? { failure } : {}), at: placed.at };
}

const disconnected = { reason: "disconnect" as const, code: ErrorCode.CLIENT_DISCONNECTED };

function evaluateOn(
  client: ClientProxy,
  request: EvaluateRequest,
  timeoutMs: number,
): Promise<EvaluateReply> {
  if (!client.evaluate)
    return Promise.reject(new FedsimError(ErrorCode.INTERNAL, `${client.id} cannot evaluate`));
  return client.evaluate(request, timeoutMs);
}

function failureOf(err: unknown): { reason: FailureReason; code: string; message: string } {
  const code = err instanceof FedsimError ? err.code : ErrorCode.INTERNAL;
  const reason: FailureReason =
    code === ErrorCode.CLIENT_TIMEOUT
      ? "timeout"
      : code === ErrorCode.CLIENT_DISCONNECTED
        ? "disconnect"
        : code === ErrorCode.BAD_PAYLOAD
          ? "rejected"
          : "error";
  return { reason, code, message: describeError(err) };
}
