import { appendFile, mkdir, writeFile } from "node:fs/promises";
import type { AddressInfo } from "node:net";
import path from "node:path";
import type * as tf from "@tensorflow/tfjs";
import type { AuthMode } from "../common/crypto/auth.js";
import { isLoopbackHost } from "../common/crypto/tls.js";
import type { Dataset } from "../common/data/dataset.js";
import { ErrorCode, FedsimError } from "../common/errors.js";
import { loadModel, saveModel } from "../common/models/io.js";
import { modelSpecs, readFlatWeights, setFlatWeights } from "../common/models/tf-weights.js";
import { buildNamedModel } from "../common/models/zoo.js";
import { type AnyStrategy, isAsyncStrategy } from "../common/strategy/async-strategy.js";
import { type BackendInfo, type BackendPreference, initBackend } from "../common/tf/backend.js";
import { evaluate } from "../common/train/trainer.js";
import { layerOfTensor, totalSize } from "../common/weights.js";
import { AsyncLoop, type AsyncLoopOptions } from "./async-loop.js";
import { createAuthGate } from "./auth-gate.js";
import {
  applyCheckpoint,
  type Checkpoint,
  type CheckpointFs,
  compactRecords,
  writeCheckpoint,
} from "./checkpoint.js";
import type { ClientLimits } from "./client-limits.js";
import type { FitOutcome } from "./client-proxy.js";
import { attachScaleOut, type ScaleOut, type ScaleOutOptions } from "./edges/scale-out.js";
import { listen } from "./listen.js";
import { type DashboardOptions, Observers } from "./observe/observers.js";
import { RoundLoop } from "./round-loop.js";
import type { RoundLoopOptions } from "./round-options.js";
import type { RoundPlugin } from "./round-plugin.js";
import type { RoundPhase, RoundRecord } from "./round-record.js";
import { CoordinatorSocketServer } from "./socket-server.js";
import { createServerTransport } from "./transport.js";

export interface CoordinatorOptions {
  host: string;
  port: number;
  rounds: number;
  /** A zoo model or one registered with `defineModel`, built fresh with `seed`; ignored with `initModel`. */
  model: string;
  /** Start from a saved TensorFlow.js model (model.json path) instead of fresh weights. */
  initModel?: string;
  /** Layers that train (and whose tensors travel); all when absent. */
  trainableLayers?: string[];
  /** Held-out data for centralised evaluation after every round. */
  testData: Dataset;
  /** A round-based strategy, or an asynchronous one (FedBuff, FedAsync: server/async-loop.ts). */
  strategy: AnyStrategy;
  deadlineMs: number;
  minAvailableClients: number;
  waitForClientsMs?: number;
  seed: number;
  outDir?: string;
  backend: BackendPreference;
  auth: AuthMode;
  tls?: { certPath: string; keyPath: string };
  plugin?: (context: PluginContext) => RoundPlugin;
  /** Continue from this checkpoint (see `readCheckpoint`): model, strategy, privacy ledger, RNG, rounds. */
  resume?: Checkpoint;
  /** Stored in every checkpoint, so a resumed run can rebuild itself (the scenario, for runs). */
  checkpointContext?: unknown;
  /** Identities remembered after they disconnect (socket-server's registry cap). */
  maxRememberedClients?: number;
  /** Bounds on what one client's update may claim (example count) or weigh (norm); see client-limits.ts. */
  limits?: Partial<ClientLimits>;
  /** A connection that has not authenticated by then is closed (socket-server's default when absent). */
  helloTimeoutMs?: number;
  /** The filesystem checkpoints are written through (tests inject failures). */
  checkpointFs?: CheckpointFs;
  /** Awaited after each round's checkpoint (progress, scenario hooks). */
  onRound?: (record: RoundRecord) => void | Promise<void>;
  /** Scripted rounds: availability and hooks before sampling, over-selection, evaluation cadence. */
  roundControl?: Pick<
    RoundLoopOptions,
    "beforeRound" | "overSelection" | "evaluateEvery" | "federatedEvaluation" | "virtualClock"
  >;
  /**
   * Asynchronous strategies: seal updates to a fresh key per fit, and a step between fits (remote
   * pools rebalance there). DP and secure aggregation plugins need rounds and are refused.
   */
  asyncControl?: Pick<AsyncLoopOptions, "envelope" | "betweenSteps">;
  onPhase?: (round: number, phase: RoundPhase, detail?: string) => void;
  onClientOutcome?: RoundLoopOptions["onClientOutcome"];
  /** Serve the live dashboard at /dashboard/ on this server (server/observe/); /metrics is always served. */
  dashboard?: DashboardOptions;
  /** Opens the dashboard and /metrics to peers that present it; without it they answer loopback only. */
  dashboardToken?: string;
  /** Run the rounds over edges joined by Redis (docs/SCALE-OUT.md); clients may still connect here too. */
  scaleOut?: ScaleOutOptions;
  log?: (line: string) => void;
}

export interface PluginContext {
  directory: CoordinatorSocketServer;
  log: (line: string) => void;
}

export interface CoordinatorResult {
  backend: BackendInfo;
  initial: { accuracy: number; loss: number };
  rounds: RoundRecord[];
  final: { accuracy: number; loss: number };
  modelPath?: string;
  stopReason?: string;
}

export interface CoordinatorHandle {
  url: string;
  port: number;
  backend: BackendInfo;
  sockets: CoordinatorSocketServer;
  /** The edges' links and directory, when the coordinator runs over edges. */
  scaleOut?: ScaleOut;
  /** The round loop, or the asynchronous loop for FedBuff/FedAsync (a "round" is then a model version). */
  loop: RoundLoop | AsyncLoop;
  /** The live dashboard's address (with its token), when the dashboard is on. */
  dashboardUrl?: string;
  /** Prometheus metrics, in text format. */
  metricsUrl: string;
  model: tf.LayersModel;
  /** Runs every round, saves the final model, and resolves with the results. */
  run(): Promise<CoordinatorResult>;
  /** The model's evaluation before the first round, once `run()` has made it. */
  readonly initial: { accuracy: number; loss: number } | undefined;
  close(): Promise<void>;
}

/**
 * Assembles a coordinator: backend, model, evaluation data, HTTP(S) + Socket.IO server, auth
 * gate and round loop. `runCoordinator` in the CLI and the scenario runner both call this.
 */
export async function startCoordinator(options: CoordinatorOptions): Promise<CoordinatorHandle> {
  const log = options.log ?? (() => {});
  refuseAsyncMisuse(options);
  const backend = await initBackend(options.backend, log);
  const model = await createGlobalModel(options);
  const specs = modelSpecs(model);
  const layerNames = new Set(model.layers.map((l) => l.name));
  for (const name of options.trainableLayers ?? []) {
    if (!layerNames.has(name)) {
      throw new FedsimError(
        ErrorCode.INVALID_CONFIG,
        `trainableLayers: unknown layer "${name}"; the model's layers are ${[...layerNames].join(", ")}`,
      );
    }
  }
  const trainableLayers = new Set(options.trainableLayers ?? [...layerNames]);
  const trainable = new Set(
    specs.filter((s) => trainableLayers.has(layerOfTensor(s.name))).map((s) => s.name),
  );
  if (trainable.size === 0)
    throw new FedsimError(ErrorCode.INVALID_CONFIG, "trainableLayers: no layer with weights trains");
  const global = await readFlatWeights(model);
  if (options.resume && !isAsyncStrategy(options.strategy)) {
    applyCheckpoint(options.resume, global, trainable, options.strategy);
  }
  const modelBytes = totalSize(global.specs) * 4;
  // Updates are at most the model's size plus framing; leave room, and never go below 1 MB.
  const maxPayloadBytes = Math.max(1_000_000, Math.ceil(modelBytes * 1.25) + 1_000_000);

  const observers = new Observers({
    ...(options.dashboard ? { dashboard: options.dashboard } : {}),
    ...(options.dashboardToken !== undefined ? { token: options.dashboardToken } : {}),
    totalRounds: options.rounds,
    history: (options.resume?.header.records ?? []) as unknown as RoundRecord[],
    log,
  });
  const httpServer = await createServerTransport(options.tls);
  // Before Socket.IO attaches: it answers its own path and hands every other request to these.
  httpServer.on("request", observers.handleRequest);
  const sockets = new CoordinatorSocketServer({
    httpServer,
    model: { topology: model.toJSON(null, false), specs },
    auth: createAuthGate(options.auth),
    maxPayloadBytes,
    ...(options.maxRememberedClients !== undefined
      ? { maxRememberedClients: options.maxRememberedClients }
      : {}),
    ...(options.limits ? { limits: options.limits } : {}),
    ...(options.helloTimeoutMs !== undefined ? { helloTimeoutMs: options.helloTimeoutMs } : {}),
    ...(observers.onUploadStart ? { onUploadStart: observers.onUploadStart } : {}),
    onClientsChanged: () => scaleOut?.directory.changed(),
    log,
  });
  observers.attach(sockets);
  let scaleOut: ScaleOut | undefined;
  const close = async () => {
    observers.close();
    await sockets.close();
    await scaleOut?.close();
    await new Promise<void>((resolve) => httpServer.close(() => resolve()));
  };
  // From here on something is open (the listening port, Socket.IO, the dashboard): a failure
  // closes it before rejecting, or a caller that sees the error still has a port held.
  const { url, port, loop } = await closeOnFailure(close, async () => {
    await listen(httpServer, options.port, options.host);
    const port = (httpServer.address() as AddressInfo).port;
    const scheme = options.tls ? "https" : "http";
    const url = `${scheme}://${options.host.includes(":") ? `[${options.host}]` : options.host}:${port}`;
    log(
      `coordinator: listening on ${url} (auth: ${options.auth.kind}, max payload ${maxPayloadBytes} bytes)`,
    );
    if (!options.tls && !isLoopbackHost(options.host)) {
      log(
        `WARNING: listening on ${options.host} without TLS; updates cross the network in the clear. Use --tls-cert/--tls-key.`,
      );
    }
    if (options.auth.kind === "open") {
      log("WARNING: open admission (--insecure-open): any client that connects may train and send updates.");
    }

    const evaluateGlobal = async (weights: typeof global) => {
      // A view, not a copy: evaluation only reads, and the global weights change only by aggregation,
      // between evaluations.
      setFlatWeights(model, weights, { shareValues: true });
      const r = await evaluate(model, options.testData);
      return { loss: r.loss, accuracy: r.accuracy };
    };
    const metricsPath = options.outDir ? path.join(options.outDir, "metrics.jsonl") : null;
    if (options.outDir) await mkdir(options.outDir, { recursive: true });
    const privacyPlugin = options.plugin?.({ directory: sockets, log });
    if (options.scaleOut) {
      scaleOut = await attachScaleOut({
        io: sockets.io,
        local: sockets,
        strategy: options.strategy,
        welcome: { model: { topology: model.toJSON(null, false), specs }, maxPayloadBytes },
        scaleOut: options.scaleOut,
        ...(privacyPlugin ? { privacy: privacyPlugin } : {}),
        limits: sockets.limits,
        log,
      });
    }
    // Over edges the scale-out plugin already holds the privacy plugin (server/edges/edge-privacy.ts).
    const plugin = scaleOut?.plugin ?? privacyPlugin;
    const directory = scaleOut?.directory ?? sockets;
    if (scaleOut) observers.attachEdges(scaleOut.directory);
    if (options.resume) {
      if (plugin?.restore) plugin.restore(options.resume.header.plugin);
      // metrics.jsonl may hold a line for a round whose checkpoint never landed: rewrite it from the checkpoint.
      if (metricsPath) {
        await writeFile(
          metricsPath,
          options.resume.header.records.map((r) => `${JSON.stringify(r)}\n`).join(""),
        );
      }
      log(`coordinator: resuming after round ${options.resume.header.round}`);
    }
    const seenClients = new Set<string>(options.resume?.header.clients ?? []);
    const strategy = options.strategy;

    const onClientOutcome = (round: number, outcome: FitOutcome, sampled: number) => {
      observers.outcome(round, outcome);
      options.onClientOutcome?.(round, outcome, sampled);
    };
    /** After each round (a version, for async): the dashboard, `persist`, metrics.jsonl, the caller. */
    const roundDone = async (record: RoundRecord, persist?: () => Promise<void>) => {
      observers.roundDone(record);
      // Checkpoint first, then metrics: a crash in between is repaired on resume.
      await persist?.();
      if (metricsPath) await appendFile(metricsPath, `${JSON.stringify(record)}\n`);
      await options.onRound?.(record);
    };
    const shared = {
      // Over edges (scale-out) the loops reach clients through their directory.
      directory,
      model: global,
      trainable,
      evaluate: evaluateGlobal,
      rounds: options.rounds,
      deadlineMs: options.deadlineMs,
      minAvailableClients: options.minAvailableClients,
      ...(options.waitForClientsMs !== undefined ? { waitForClientsMs: options.waitForClientsMs } : {}),
      seed: options.seed,
      onClientOutcome,
      log,
    };
    if (isAsyncStrategy(strategy)) {
      const loop = new AsyncLoop({
        ...shared,
        strategy,
        ...pick(options.roundControl, "evaluateEvery", "virtualClock"),
        ...pick(options.asyncControl, "envelope", "betweenSteps"),
        // No checkpoints: an asynchronous run cannot resume (its fits in flight are not saved).
        onRound: (record) => roundDone(record),
      });
      return { url, port, loop };
    }

    const checkpoint = async (record: RoundRecord) => {
      for (const c of sockets.connected()) seenClients.add(c.id);
      for (const id of seenClients) {
        if (seenClients.size <= MAX_CHECKPOINTED_CLIENT_IDS) break;
        seenClients.delete(id);
      }
      if (!options.outDir) return;
      await writeCheckpoint(
        options.outDir,
        {
          header: {
            round: record.round,
            trainable: [...trainable],
            strategy: { name: strategy.name, state: strategy.state() },
            plugin: plugin?.state?.() ?? null,
            rngState: loop.rngState(),
            clients: [...seenClients],
            records: compactRecords(loop.records) as unknown as Record<string, unknown>[],
            context: options.checkpointContext ?? null,
          },
          weights: global,
        },
        options.checkpointFs ? { fs: options.checkpointFs } : {},
      );
    };
    const loop: RoundLoop = new RoundLoop({
      ...shared,
      strategy,
      ...(plugin ? { plugin } : {}),
      ...(options.resume
        ? {
            resume: {
              records: options.resume.header.records as unknown as RoundRecord[],
              rngState: options.resume.header.rngState,
            },
          }
        : {}),
      onRound: (record) => roundDone(record, () => checkpoint(record)),
      ...(options.roundControl ?? {}),
      onPhase: (round, phase, detail) => {
        observers.phase(round, phase, detail);
        options.onPhase?.(round, phase, detail);
      },
      onSampled: (round, clientIds) => observers.sampled(round, clientIds),
    });
    return { url, port, loop };
  });

  const dashboardUrl = observers.dashboardUrl(url);
  if (dashboardUrl) {
    const token = options.dashboardToken !== undefined ? " (open it with its token)" : " (loopback only)";
    log(`coordinator: dashboard at ${url}/dashboard/${token}`);
  }
  let initialEvaluation: { accuracy: number; loss: number } | undefined;
  return {
    url,
    port,
    backend,
    sockets,
    ...(scaleOut ? { scaleOut } : {}),
    loop,
    ...(dashboardUrl ? { dashboardUrl } : {}),
    metricsUrl: observers.metricsUrl(url),
    model,
    get initial() {
      return initialEvaluation;
    },
    async run() {
      const initial = await loop.evaluateCurrent();
      initialEvaluation = initial;
      log(`round 0: accuracy ${initial.accuracy.toFixed(4)}, loss ${initial.loss.toFixed(4)}`);
      const rounds = await loop.run();
      const final = await loop.evaluateCurrent();
      let modelPath: string | undefined;
      if (options.outDir) {
        setFlatWeights(model, global);
        modelPath = (await saveModel(model, path.join(options.outDir, "model"))).modelJsonPath;
        await writeFile(path.join(options.outDir, "trainable.json"), JSON.stringify([...trainable]));
      }
      return {
        backend,
        initial,
        rounds,
        final,
        ...(modelPath ? { modelPath } : {}),
        ...(loop.stopReason ? { stopReason: loop.stopReason } : {}),
      };
    },
    close,
  };
}

/**
 * What an asynchronous strategy cannot do, refused before anything listens: resume (fits in
 * flight are not checkpointed), round plugins (DP's accountant and SecAgg's masks are per round),
 * and the round loop's per-round controls.
 */
function refuseAsyncMisuse(options: CoordinatorOptions): void {
  const strategy = options.strategy;
  if (!isAsyncStrategy(strategy)) return;
  const refuse = (what: string) => {
    throw new FedsimError(
      ErrorCode.INCOMPATIBLE_OPTIONS,
      `${what} cannot be combined with the asynchronous strategy "${strategy.name}"`,
    );
  };
  if (options.resume) refuse("resume (an asynchronous run writes no checkpoints)");
  if (options.plugin)
    refuse("a round plugin (DP or secure aggregation; use asyncControl.envelope for envelopes)");
  const control = options.roundControl ?? {};
  if (control.beforeRound) refuse("scripted per-round availability or hooks");
  if ((control.overSelection ?? 0) > 0) refuse("over-selection");
  if (control.federatedEvaluation) refuse("federated evaluation");
}

/** Runs `setup`; if it fails, runs `close` (whose own failure would hide the cause) and rethrows. */
async function closeOnFailure<T>(close: () => Promise<void>, setup: () => Promise<T>): Promise<T> {
  try {
    return await setup();
  } catch (err) {
    await close().catch(() => {});
    throw err;
  }
}

/** The listed keys of `from` that are set, for spreading into options objects. */
function pick<T extends object, K extends keyof T>(from: T | undefined, ...keys: K[]): Partial<Pick<T, K>> {
  const out: Partial<Pick<T, K>> = {};
  for (const key of keys) if (from?.[key] !== undefined) out[key] = from[key];
  return out;
}

async function createGlobalModel(options: CoordinatorOptions): Promise<tf.LayersModel> {
  if (options.initModel) return loadModel(options.initModel);
  return buildNamedModel(options.model, {
    inputShape: options.testData.exampleShape,
    numClasses: options.testData.numClasses,
    seed: options.seed,
  });
}

/** Client ids a checkpoint remembers (the registry's default cap); the oldest go first. */
const MAX_CHECKPOINTED_CLIENT_IDS = 10_000;
