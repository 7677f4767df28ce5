import { Command } from "commander";
import { z } from "zod";
import { type AuthMode, MIN_TOKEN_CHARS } from "../../common/crypto/auth.js";
import { readAllowlist } from "../../common/crypto/identity.js";
import { loadDataset } from "../../common/data/registry.js";
import { ErrorCode, FedsimError } from "../../common/errors.js";
import { MAX_TOKEN_CHARS } from "../../common/protocol.js";
import { type AsyncStrategy, isAsyncStrategy } from "../../common/strategy/async-strategy.js";
import { FedAsync } from "../../common/strategy/fedasync.js";
import { FedAvg } from "../../common/strategy/fedavg.js";
import { FedBuff } from "../../common/strategy/fedbuff.js";
import { STALENESS_KINDS, type StalenessSpec } from "../../common/strategy/staleness.js";
import type { FitConfig } from "../../common/strategy/strategy.js";
import { BACKEND_NAMES } from "../../scenarios/schema.js";
import { readCheckpoint } from "../../server/checkpoint.js";
import { startCoordinator } from "../../server/coordinator.js";
import { MAX_DASHBOARD_TOKEN_CHARS } from "../../server/observe/access.js";
import type { DashboardOptions } from "../../server/observe/observers.js";
import { assertStrategyFitsPrivacy, PrivacyPlugin } from "../../server/plugins/privacy.js";
import { list, num, parseOptions, stdoutLog } from "../options.js";

const schema = z
  .object({
    host: z.string().default("127.0.0.1"),
    port: z.number().int().min(0).max(65535).default(8080),
    rounds: z.number().int().min(0).default(10),
    model: z.string().default("mnist-2nn"),
    initModel: z.string().optional(),
    trainableLayers: z.array(z.string()).optional(),
    dataset: z.enum(["mnist", "fashion-mnist", "idx", "csv", "synthetic"]).default("mnist"),
    dataDir: z.string().optional(),
    minClients: z.number().int().positive().default(2),
    fractionFit: z.number().gt(0).max(1).default(1),
    minFitClients: z.number().int().positive().default(1),
    deadline: z.number().positive().default(300),
    epochs: z.number().int().positive().default(1),
    batchSize: z.number().int().positive().default(10),
    lr: z.number().positive().default(0.05),
    seed: z.number().int().nonnegative().default(0),
    out: z.string().optional(),
    backend: z.enum(BACKEND_NAMES).default("auto"),
    allow: z.string().optional(),
    token: z.string().min(MIN_TOKEN_CHARS).max(MAX_TOKEN_CHARS).optional(),
    insecureOpen: z.boolean().optional(),
    tlsCert: z.string().optional(),
    tlsKey: z.string().optional(),
    envelope: z.boolean().optional(),
    dpNoise: z.number().nonnegative().optional(),
    dpClip: z.number().positive().optional(),
    dpMode: z.enum(["central", "distributed", "local"]).default("central"),
    dpDelta: z.number().gt(0).lt(1).default(1e-5),
    targetEpsilon: z.number().positive().optional(),
    secagg: z.enum(["complete", "secagg+"]).optional(),
    secaggClipRange: z.number().positive().default(1),
    secaggMaxWeight: z.number().positive().default(10_000),
    resume: z.string().optional(),
    maxRememberedClients: z.number().int().nonnegative().optional(),
    maxExamplesPerClient: z.number().int().positive().optional(),
    maxUpdateNorm: z.number().positive().optional(),
    strategy: z.enum(["fedavg", "fedbuff", "fedasync"]).default("fedavg"),
    concurrency: z.number().int().positive().optional(),
    bufferSize: z.number().int().positive().optional(),
    serverLr: z.number().positive().optional(),
    mixing: z.number().gt(0).max(1).optional(),
    staleness: z.enum(STALENESS_KINDS).optional(),
    stalenessA: z.number().positive().optional(),
    stalenessB: z.number().nonnegative().optional(),
    dashboard: z.boolean().optional(),
    dashboardToken: z.string().min(MIN_TOKEN_CHARS).max(MAX_DASHBOARD_TOKEN_CHARS).optional(),
  })
  .superRefine((o, ctx) => {
    const modes = [o.allow !== undefined, o.token !== undefined, o.insecureOpen === true].filter(
      Boolean,
    ).length;
    if (modes !== 1) {
      ctx.addIssue({
        code: "custom",
        path: ["allow"],
        message: "choose exactly one of --allow FILE, --token T, --insecure-open",
      });
    }
    if ((o.tlsCert === undefined) !== (o.tlsKey === undefined)) {
      ctx.addIssue({ code: "custom", path: ["tlsCert"], message: "--tls-cert and --tls-key go together" });
    }
    if (o.strategy !== "fedavg" && (o.dpNoise !== undefined || o.secagg !== undefined)) {
      ctx.addIssue({
        code: "custom",
        path: ["strategy"],
        message: `${o.strategy} is asynchronous: DP and secure aggregation need rounds (--envelope works)`,
      });
    }
    if ((o.dpNoise === undefined) !== (o.dpClip === undefined)) {
      ctx.addIssue({ code: "custom", path: ["dpNoise"], message: "--dp-noise and --dp-clip go together" });
    }
  });

export function coordinatorCommand(): Command {
  return new Command("coordinator")
    .description("run a coordinator that real client nodes connect to")
    .option("--host <host>", "address to listen on", "127.0.0.1")
    .option("--port <port>", "port (0 = any free port)", num)
    .option("--rounds <n>", "rounds to run", num)
    .option("--model <name>", "zoo model: mnist-2nn, mnist-cnn, tiny-cnn, tiny-mlp, logreg")
    .option("--init-model <model.json>", "start from a saved TensorFlow.js model (fine-tuning)")
    .option("--trainable-layers <a,b>", "only these layers train and travel", list)
    .option("--dataset <name>", "evaluation data: mnist, fashion-mnist, idx, csv, synthetic")
    .option("--data-dir <dir>", "directory with the dataset's files")
    .option("--min-clients <n>", "clients that must be connected before a round starts", num)
    .option("--fraction-fit <f>", "fraction of connected clients sampled per round", num)
    .option("--min-fit-clients <n>", "fewer results than this keeps the old model", num)
    .option("--deadline <seconds>", "per-round deadline", num)
    .option("--epochs <n>", "local epochs", num)
    .option("--batch-size <n>", "local batch size", num)
    .option("--lr <x>", "local learning rate", num)
    .option("--seed <n>", "seed for model init and sampling", num)
    .option("--out <dir>", "metrics.jsonl and the final model")
    .option("--backend <name>", "auto | gpu | node | webgpu | native | wasm | cpu")
    .option("--allow <file>", "admit only the public keys listed in this file")
    .option(
      "--token <token>",
      `admit clients that present this shared token (at least ${MIN_TOKEN_CHARS} characters)`,
    )
    .option("--insecure-open", "admit anyone (local experiments only)")
    .option(
      "--max-remembered-clients <n>",
      "identities kept after they disconnect, oldest forgotten first (default 10000)",
      num,
    )
    .option(
      "--max-examples-per-client <n>",
      "refuse an update claiming more examples than this (default 1000000)",
      num,
    )
    .option("--max-update-norm <x>", "refuse an update whose L2 norm is above this (default 1e6)", num)
    .option("--tls-cert <file>", "serve HTTPS/WSS with this certificate")
    .option("--tls-key <file>", "private key for --tls-cert")
    .option("--envelope", "clients seal updates to a per-round key (needs client identities)")
    .option("--dp-noise <z>", "DP noise multiplier", num)
    .option("--dp-clip <S>", "DP clip norm", num)
    .option("--dp-mode <mode>", "central | distributed | local")
    .option("--dp-delta <d>", "DP delta", num)
    .option("--target-epsilon <e>", "stop before ε would exceed this", num)
    .option("--resume <dir>", "continue from the checkpoint in DIR (written after every round with --out)")
    .option("--secagg <graph>", "secure aggregation: complete | secagg+")
    .option("--secagg-clip-range <r>", "clamp each update coordinate to ±r before quantising", num)
    .option("--secagg-max-weight <n>", "cap on a client's example-count weight under secagg", num)
    .option(
      "--strategy <name>",
      "fedavg (rounds) | fedbuff | fedasync (asynchronous: --rounds counts model versions)",
    )
    .option("--concurrency <M>", "fedbuff/fedasync: clients training at once (default --min-clients)", num)
    .option("--buffer-size <K>", "fedbuff: updates per server step (default M)", num)
    .option("--server-lr <eta>", "fedbuff: server learning rate (default 1)", num)
    .option("--mixing <alpha>", "fedasync: mixing weight in (0, 1] (default 0.6)", num)
    .option(
      "--staleness <kind>",
      "fedbuff/fedasync: constant | polynomial | hinge (default polynomial, a = 0.5)",
    )
    .option("--staleness-a <a>", "polynomial/hinge: a (default 0.5 for polynomial)", num)
    .option("--staleness-b <b>", "hinge: b (default 0)", num)
    .option("--dashboard", "serve a live dashboard at /dashboard/ on this server (loopback only by default)")
    .option(
      "--dashboard-token <token>",
      `open the dashboard and /metrics to peers that present this token (at least ${MIN_TOKEN_CHARS} characters)`,
    )
    .action(async (raw: unknown) => {
      const o = parseOptions(schema, raw);
      const log = stdoutLog();
      const data = await loadDataset({
        name: o.dataset,
        ...(o.dataDir ? { dataDir: o.dataDir, path: o.dataDir } : {}),
      });
      const auth: AuthMode = o.allow
        ? { kind: "allowlist", publicKeys: await readAllowlist(o.allow) }
        : o.token
          ? { kind: "token", token: o.token }
          : { kind: "open" };
      const dp =
        o.dpNoise !== undefined && o.dpClip !== undefined
          ? {
              mode: o.dpMode,
              noiseMultiplier: o.dpNoise,
              clipNorm: o.dpClip,
              delta: o.dpDelta,
              conversion: "classic" as const,
              ...(o.targetEpsilon !== undefined ? { targetEpsilon: o.targetEpsilon } : {}),
            }
          : undefined;
      if (o.targetEpsilon !== undefined && !dp) {
        throw new FedsimError(ErrorCode.INVALID_CONFIG, "--target-epsilon needs --dp-noise and --dp-clip");
      }
      const secagg = o.secagg
        ? {
            graph: o.secagg,
            clipRange: o.secaggClipRange,
            maxWeight: o.secaggMaxWeight,
            stageTimeoutMs: Math.round(o.deadline * 1000),
            seed: o.seed,
          }
        : undefined;
      const fitConfig = { epochs: o.epochs, batchSize: o.batchSize, learningRate: o.lr };
      const strategy =
        o.strategy === "fedavg"
          ? new FedAvg({
              fractionFit: o.fractionFit,
              minFitClients: o.minFitClients,
              fitConfig,
              uniformWeights: dp !== undefined,
            })
          : asyncStrategy(o, fitConfig);
      if (!isAsyncStrategy(strategy))
        assertStrategyFitsPrivacy(strategy, { ...(secagg ? { secagg } : {}), dp });
      const asynchronous = isAsyncStrategy(strategy);
      const plugin =
        !asynchronous && (dp || o.envelope || secagg)
          ? new PrivacyPlugin({
              envelope: o.envelope ?? false,
              ...(dp ? { dp } : {}),
              ...(secagg ? { secagg } : {}),
              expectedClientsPerRound: o.minClients,
              log,
            })
          : undefined;
      const handle = await startCoordinator({
        host: o.host,
        port: o.port,
        rounds: o.rounds,
        model: o.model,
        ...(o.initModel ? { initModel: o.initModel } : {}),
        ...(o.trainableLayers ? { trainableLayers: o.trainableLayers } : {}),
        testData: data.test,
        strategy,
        deadlineMs: Math.round(o.deadline * 1000),
        minAvailableClients: o.minClients,
        waitForClientsMs: 24 * 3600 * 1000,
        seed: o.seed,
        ...(o.out || o.resume ? { outDir: o.resume ?? o.out } : {}),
        ...(o.resume ? { resume: await readCheckpoint(o.resume) } : {}),
        backend: o.backend,
        auth,
        ...(o.maxRememberedClients !== undefined ? { maxRememberedClients: o.maxRememberedClients } : {}),
        limits: {
          ...(o.maxExamplesPerClient !== undefined ? { maxExamplesPerClient: o.maxExamplesPerClient } : {}),
          ...(o.maxUpdateNorm !== undefined ? { maxUpdateNorm: o.maxUpdateNorm } : {}),
        },
        ...(o.tlsCert && o.tlsKey ? { tls: { certPath: o.tlsCert, keyPath: o.tlsKey } } : {}),
        ...(plugin ? { plugin: () => plugin } : {}),
        ...(asynchronous && o.envelope ? { asyncControl: { envelope: true } } : {}),
        ...(o.dashboard ? { dashboard: coordinatorDashboard(o, strategy.name, dp?.targetEpsilon) } : {}),
        ...(o.dashboardToken !== undefined ? { dashboardToken: o.dashboardToken } : {}),
        onRound: (r) =>
          log(
            `round ${r.round}: accuracy ${r.accuracy.toFixed(4)} loss ${r.loss.toFixed(4)} participants ${r.participants} failures ${r.failures}${r.staleness ? ` staleness ${r.staleness.mean.toFixed(2)} (max ${r.staleness.max})` : ""}${r.epsilon !== undefined ? ` ε ${r.epsilon.toFixed(3)}` : ""}`,
          ),
        log,
      });
      log(`coordinator: waiting for ${o.minClients} client(s) at ${handle.url}`);
      if (handle.dashboardUrl) log(`coordinator: dashboard: ${handle.dashboardUrl}`);
      log(`coordinator: Prometheus metrics: ${handle.metricsUrl}`);
      const stop = () => void handle.close().then(() => process.exit(130));
      process.once("SIGINT", stop);
      try {
        const result = await handle.run();
        log(
          `done: final accuracy ${result.final.accuracy.toFixed(4)}${result.modelPath ? `; model at ${result.modelPath}` : ""}`,
        );
      } finally {
        await handle.close();
      }
    });
}

/** FedBuff or FedAsync from the command line; M defaults to the clients the coordinator waits for. */
function asyncStrategy(o: z.infer<typeof schema>, fitConfig: FitConfig): AsyncStrategy {
  const staleness: StalenessSpec | undefined =
    o.staleness === "constant"
      ? { kind: "constant" }
      : o.staleness === "hinge"
        ? { kind: "hinge", a: o.stalenessA ?? 1, b: o.stalenessB ?? 0 }
        : o.staleness === "polynomial" || o.stalenessA !== undefined
          ? { kind: "polynomial", a: o.stalenessA ?? 0.5 }
          : undefined;
  const common = {
    concurrency: o.concurrency ?? o.minClients,
    fitConfig,
    ...(staleness ? { staleness } : {}),
  };
  if (o.strategy === "fedasync")
    return new FedAsync({ ...common, ...(o.mixing !== undefined ? { mixing: o.mixing } : {}) });
  return new FedBuff({
    ...common,
    bufferSize: o.bufferSize ?? common.concurrency,
    ...(o.serverLr !== undefined ? { serverLearningRate: o.serverLr } : {}),
  });
}

/** What the dashboard lists as this coordinator's configuration; tokens and key files stay out. */
function coordinatorDashboard(
  o: z.infer<typeof schema>,
  strategy: string,
  targetEpsilon: number | undefined,
): DashboardOptions {
  const privacy = [
    o.dpNoise !== undefined ? `${o.dpMode} DP (z=${o.dpNoise}, S=${o.dpClip}, δ=${o.dpDelta})` : "",
    o.secagg ? `SecAgg (${o.secagg})` : "",
    o.envelope ? "envelopes" : "",
  ].filter(Boolean);
  return {
    config: {
      model: o.initModel ?? o.model,
      "evaluation data": o.dataset,
      strategy,
      rounds: o.rounds,
      "min clients": o.minClients,
      "fraction fit": o.fractionFit,
      "local epochs (E)": o.epochs,
      "batch size (B)": o.batchSize,
      "learning rate": o.lr,
      "round deadline (s)": o.deadline,
      admission: o.allow ? "allowlist" : o.token ? "token" : "open",
      tls: o.tlsCert !== undefined,
      privacy: privacy.length > 0 ? privacy.join(", ") : "none",
      seed: o.seed,
    },
    ...(targetEpsilon !== undefined ? { targetEpsilon } : {}),
  };
}
