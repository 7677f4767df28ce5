import { Command } from "commander";
import { z } from "zod";
import { type AuthMode, MIN_TOKEN_CHARS } from "../../common/crypto/auth.js";
import { readAllowlist } from "../../common/crypto/identity.js";
import { MAX_TOKEN_CHARS } from "../../common/protocol.js";
import { isAsyncStrategy } from "../../common/strategy/async-strategy.js";
import { STRATEGY_NAMES } from "../../common/strategy/names.js";
import { STALENESS_KINDS } from "../../common/strategy/staleness.js";
import { readConfigFile, resolveFederation } from "../../scenarios/coordinator-config.js";
import { loadScenarioData } from "../../scenarios/data.js";
import { clientsPerRound, evaluationControl, privacyPlugin } from "../../scenarios/federation.js";
import { deploymentConfigOf } from "../../scenarios/report/run-config.js";
import { LiveRunFiles } from "../../scenarios/run-files.js";
import { BACKEND_NAMES, scenarioSchema } from "../../scenarios/schema.js";
import { createStrategy } from "../../scenarios/strategy-factory.js";
import { readCheckpoint } from "../../server/checkpoint.js";
import { startCoordinator } from "../../server/coordinator.js";
import { MAX_DASHBOARD_TOKEN_CHARS } from "../../server/observe/access.js";
import type { DashboardOptions } from "../../server/observe/observers.js";
import type { RoundRecord } from "../../server/round-record.js";
import { collect, flagLayer } from "../coordinator-flags.js";
import { list, num, parseOptions, stderrLog } from "../options.js";
import { readPemFile, runEdgeCommand } from "./edge.js";

/** The scenario format's defaults, shown in --help: a config file that omits a field gets the same. */
const D = scenarioSchema.parse({ name: "defaults" });

const schema = z
  .object({
    config: z.string().optional(),
    host: z.string(),
    port: z.number().int().min(0).max(65535),
    minClients: z.number().int().positive(),
    out: z.string().optional(),
    allow: z.string().optional(),
    token: z.string().min(MIN_TOKEN_CHARS).max(MAX_TOKEN_CHARS).optional(),
    insecureOpen: z.boolean().optional(),
    tlsCert: z.string().optional(),
    tlsKey: z.string().optional(),
    resume: z.string().optional(),
    maxRememberedClients: z.number().int().nonnegative().optional(),
    secaggMaxWeight: z.number().positive(),
    strategyOption: z.array(z.string()).optional(),
    dashboard: z.boolean().optional(),
    dashboardToken: z.string().min(MIN_TOKEN_CHARS).max(MAX_DASHBOARD_TOKEN_CHARS).optional(),
    // Federation options: checked here for their type and sign, then again as scenario fields.
    rounds: z.number().int().min(0),
    model: z.string(),
    initModel: z.string().optional(),
    trainableLayers: z.array(z.string()).optional(),
    dataset: z.enum(["mnist", "fashion-mnist", "idx", "csv", "synthetic"]),
    dataDir: z.string().optional(),
    fractionFit: z.number().gt(0).max(1),
    clientsPerRound: z.number().int().positive().optional(),
    minFitClients: z.number().int().positive(),
    deadline: z.number().positive(),
    epochs: z.number().int().positive(),
    batchSize: z.number().int().positive(),
    lr: z.number().positive(),
    seed: z.number().int().nonnegative(),
    backend: z.enum(BACKEND_NAMES),
    strategy: z.enum(STRATEGY_NAMES),
    concurrency: z.number().int().positive().optional(),
    bufferSize: z.number().int().positive().optional(),
    serverLr: z.number().positive().optional(),
    mixing: z.number().gt(0).max(1).optional(),
    staleness: z.enum(STALENESS_KINDS).optional(),
    stalenessA: z.number().positive().optional(),
    stalenessB: z.number().nonnegative().optional(),
    envelope: z.boolean().optional(),
    dpNoise: z.number().nonnegative().optional(),
    dpClip: z.number().positive().optional(),
    dpMode: z.enum(["central", "distributed", "local"]),
    dpDelta: z.number().gt(0).lt(1),
    targetEpsilon: z.number().positive().optional(),
    secagg: z.enum(["complete", "secagg+"]).optional(),
    secaggClipRange: z.number().positive(),
    maxExamplesPerClient: z.number().int().positive().optional(),
    maxUpdateNorm: z.number().positive().optional(),
    redis: z
      .string()
      .regex(/^rediss?:\/\//, "a redis:// or rediss:// URL, or a comma-separated list of a cluster's nodes")
      .optional(),
    edge: z.boolean().optional(),
    coordinatorUrl: z.string().url().optional(),
    edgeId: z.string().min(1).max(256).optional(),
    edgeToken: z.string().min(MIN_TOKEN_CHARS).max(MAX_TOKEN_CHARS).optional(),
    redisWait: z.number().positive().max(86_400).optional(),
    ca: z.string().min(1).optional(),
    redisCa: z.string().min(1).optional(),
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
    if (o.edge === true && (o.redis === undefined || o.coordinatorUrl === undefined)) {
      ctx.addIssue({
        code: "custom",
        path: ["edge"],
        message: "--edge needs --redis URL and --coordinator-url URL (docs/SCALE-OUT.md)",
      });
    }
    if (o.edge !== true && o.ca !== undefined) {
      ctx.addIssue({
        code: "custom",
        path: ["ca"],
        message: "--ca is an --edge option (the CA of the coordinator's certificate)",
      });
    }
    if (o.edge !== true && o.coordinatorUrl !== undefined) {
      ctx.addIssue({
        code: "custom",
        path: ["coordinatorUrl"],
        message: "--coordinator-url is an --edge option",
      });
    }
    if ((o.tlsCert === undefined) !== (o.tlsKey === undefined)) {
      ctx.addIssue({ code: "custom", path: ["tlsCert"], message: "--tls-cert and --tls-key go together" });
    }
  });

export function coordinatorCommand(): Command {
  return new Command("coordinator")
    .description(
      "run a coordinator that real client nodes connect to; --config takes a scenario file's federation sections, options override it",
    )
    .option(
      "--config <file>",
      "YAML/JSON: strategy, sampling, rounds, deadlines, fit, evaluation, privacy, limits",
    )
    .option("--host <host>", "address to listen on", "127.0.0.1")
    .option("--port <port>", "port (0 = any free port)", num, 8080)
    .option("--min-clients <n>", "clients that must be connected before a round starts", num, 2)
    .option(
      "--out <dir>",
      "summary.json, metrics.jsonl, report.html (as rounds end), checkpoint, final model",
    )
    .option("--rounds <n>", "rounds to run (asynchronous strategies: model versions)", num, D.rounds)
    .option("--strategy <name>", STRATEGY_NAMES.join(" | "), D.strategy.name)
    .option(
      "--strategy-option <key=value>",
      "a strategy option, repeatable: momentum=0.9, proximalMu=0.01, staleness.kind=hinge (docs/SCENARIOS.md)",
      collect,
    )
    .option(
      "--clients-per-round <n>",
      "clients sampled per round (default: --fraction-fit × connected clients)",
      num,
    )
    .option("--fraction-fit <f>", "fraction of connected clients sampled per round", num, D.fractionFit)
    .option("--min-fit-clients <n>", "fewer results than this keeps the old model", num, D.minFitClients)
    .option("--deadline <seconds>", "per-round deadline", num, D.roundDeadlineSeconds)
    .option("--epochs <n>", "local epochs", num, D.fit.epochs)
    .option("--batch-size <n>", "local batch size", num, D.fit.batchSize)
    .option("--lr <x>", "local learning rate", num, D.fit.learningRate)
    .option("--seed <n>", "seed for model init and sampling", num, D.seed)
    .option("--model <name>", "zoo model: mnist-2nn, mnist-cnn, tiny-cnn, tiny-mlp, logreg", D.model)
    .option("--init-model <model.json>", "start from a saved TensorFlow.js model (fine-tuning)")
    .option("--trainable-layers <a,b>", "only these layers train and travel (default: all)", list)
    .option("--dataset <name>", "evaluation data: mnist, fashion-mnist, idx, csv, synthetic", D.dataset.name)
    .option("--data-dir <dir>", "directory with the dataset's files")
    .option("--backend <name>", "auto | gpu | node | webgpu | native | wasm | cpu", D.backend)
    .option("--allow <file>", "admit only the public keys listed in this file")
    .option(
      "--token <token>",
      `admit clients that present this shared token (at least ${MIN_TOKEN_CHARS} characters)`,
    )
    .option("--insecure-open", "admit anyone (local experiments only)")
    .option(
      "--max-remembered-clients <n>",
      "identities kept after they disconnect, oldest forgotten first (default: 10000)",
      num,
    )
    .option(
      "--max-examples-per-client <n>",
      "refuse an update claiming more examples than this (default: 1000000)",
      num,
    )
    .option("--max-update-norm <x>", "refuse an update whose L2 norm is above this (default: 1e6)", num)
    .option("--tls-cert <file>", "serve HTTPS/WSS with this certificate")
    .option("--tls-key <file>", "private key for --tls-cert")
    .option("--envelope", "clients seal updates to a per-round key (needs client identities)")
    .option("--dp-noise <z>", "DP noise multiplier (with --dp-clip)", num)
    .option("--dp-clip <S>", "DP clip norm", num)
    .option("--dp-mode <mode>", "central | distributed | local", "central")
    .option("--dp-delta <d>", "DP delta", num, 1e-5)
    .option("--target-epsilon <e>", "stop before ε would exceed this", num)
    .option("--resume <dir>", "continue from the checkpoint in DIR (written after every round with --out)")
    .option("--secagg <graph>", "secure aggregation: complete | secagg+")
    .option("--secagg-clip-range <r>", "clamp each update coordinate to ±r before quantising", num, 1)
    .option("--secagg-max-weight <n>", "cap on a client's example-count weight under secagg", num, 10_000)
    .option(
      "--concurrency <M>",
      "fedbuff/fedasync: clients training at once (default: --clients-per-round, else --min-clients)",
      num,
    )
    .option("--buffer-size <K>", "fedbuff: updates per server step (default: M)", num)
    .option(
      "--server-lr <eta>",
      "server learning rate η (default: 1; 0.1 for fedadam/fedyogi/fedadagrad)",
      num,
    )
    .option("--mixing <alpha>", "fedasync: mixing weight in (0, 1] (default: 0.6)", num)
    .option(
      "--staleness <kind>",
      "fedbuff/fedasync: constant | polynomial | hinge (default: polynomial, a = 0.5)",
    )
    .option("--staleness-a <a>", "polynomial/hinge: a (default: 0.5 polynomial, 1 hinge)", num)
    .option("--staleness-b <b>", "hinge: b (default: 0)", num)
    .option("--dashboard", "serve a live dashboard at /dashboard/ on this server (loopback only by default)")
    .option(
      "--dashboard-token <token>",
      `open the dashboard and /metrics to peers that present this token (at least ${MIN_TOKEN_CHARS} characters)`,
    )
    .option(
      "--redis <url>",
      "join the coordinator and its edges through this Redis (redis://host:port), or a Redis Cluster (its nodes, comma-separated)",
    )
    .option(
      "--redis-wait <seconds>",
      "how long to wait for Redis at start before giving up with REDIS_UNREACHABLE (default: 30)",
      num,
    )
    .option("--redis-ca <file>", "trust this CA for a rediss:// Redis's certificate (default: the system's)")
    .option("--edge", "run an edge: hold client connections for the coordinator at --coordinator-url")
    .option("--coordinator-url <url>", "edge: the coordinator's address, for the edge's direct link")
    .option("--edge-id <id>", "edge: its name among the edges (default: random)")
    .option(
      "--ca <file>",
      "edge: trust this CA certificate for the coordinator's TLS (default: the system's)",
    )
    .option(
      "--edge-token <token>",
      `the secret edges present on their link (both sides; without it only loopback edges may link)`,
    )
    .action(async (raw: Record<string, unknown>, command: Command) => {
      const o = parseOptions(schema, raw);
      const log = stderrLog();
      if (o.edge === true) return runEdgeCommand(o, await authModeOf(o), log);
      const file = o.config ? await readConfigFile(o.config) : undefined;
      if (file && file.ignored.length > 0) {
        log(
          `coordinator: ${o.config}: not read here (they describe simulated clients): ${file.ignored.join(", ")}`,
        );
      }
      const given = (flag: string) => command.getOptionValueSource(flag) === "cli";
      const flags = flagLayer(raw, given, o.strategyOption ?? []);
      const scenario = resolveFederation(file, flags, o.minClients);
      await runCoordinatorCommand(o, scenario, log);
    });
}

type Options = z.infer<typeof schema>;
type Federation = ReturnType<typeof resolveFederation>;

async function runCoordinatorCommand(o: Options, scenario: Federation, log: (line: string) => void) {
  const data = await loadScenarioData(scenario);
  const auth = await authModeOf(o);
  const strategy = createStrategy(scenario);
  const asynchronous = isAsyncStrategy(strategy);
  const deadlineMs = Math.round(scenario.roundDeadlineSeconds * 1000);
  const perRound = clientsPerRound(scenario, strategy);
  const plugin = privacyPlugin(scenario, strategy, {
    maxWeight: o.secaggMaxWeight,
    stageTimeoutMs: deadlineMs,
    expectedClientsPerRound: perRound,
    log,
  });
  const seen = new Set<string>();
  let stopping = false;
  // A resumed run goes on writing where it left off.
  const outDir = o.resume ?? o.out;
  const files = outDir
    ? new LiveRunFiles(
        outDir,
        () => ({
          name: scenario.name,
          backend: handle.backend.name,
          strategy: strategy.name,
          seed: scenario.seed,
          sampling: handle.loop.samplingReproducible ? "seeded" : "csprng",
          clients: { connected: Math.max(seen.size, o.minClients), sampledPerRound: perRound },
          config: deploymentConfigOf(scenario, strategy.name, o.minClients),
          initial: handle.initial ?? { accuracy: Number.NaN, loss: Number.NaN },
          ...(scenario.privacy?.dp ? { delta: scenario.privacy.dp.delta } : {}),
          asynchronous,
        }),
        log,
      )
    : undefined;
  const onRound = async (r: RoundRecord) => {
    log(
      `round ${r.round}: accuracy ${r.accuracy.toFixed(4)} loss ${r.loss.toFixed(4)} participants ${r.participants} failures ${r.failures}${r.staleness ? ` staleness ${r.staleness.mean.toFixed(2)} (max ${r.staleness.max})` : ""}${r.epsilon !== undefined ? ` ε ${r.epsilon.toFixed(3)}` : ""}`,
    );
    for (const c of r.clients ?? []) seen.add(c.clientId);
    // After Ctrl-C, the round cut short by the shutdown is not the run's.
    if (!stopping) await files?.write(handle.loop.records);
  };
  const handle = await startCoordinator({
    host: o.host,
    port: o.port,
    rounds: scenario.rounds,
    model: scenario.model,
    ...(scenario.initModel ? { initModel: scenario.initModel } : {}),
    ...(scenario.trainableLayers ? { trainableLayers: scenario.trainableLayers } : {}),
    testData: data.test,
    strategy,
    deadlineMs,
    minAvailableClients: o.minClients,
    waitForClientsMs: 24 * 3600 * 1000,
    seed: scenario.seed,
    ...(outDir ? { outDir } : {}),
    ...(o.resume ? { resume: await readCheckpoint(o.resume) } : {}),
    backend: scenario.backend,
    auth,
    ...(o.maxRememberedClients !== undefined ? { maxRememberedClients: o.maxRememberedClients } : {}),
    ...(scenario.limits ? { limits: scenario.limits } : {}),
    ...(o.tlsCert && o.tlsKey ? { tls: { certPath: o.tlsCert, keyPath: o.tlsKey } } : {}),
    ...(plugin ? { plugin: () => plugin } : {}),
    ...(asynchronous && scenario.privacy?.envelope ? { asyncControl: { envelope: true } } : {}),
    roundControl: evaluationControl(scenario, deadlineMs),
    ...(o.dashboard ? { dashboard: coordinatorDashboard(o, scenario, strategy.name) } : {}),
    ...(o.dashboardToken !== undefined ? { dashboardToken: o.dashboardToken } : {}),
    ...(o.redis !== undefined
      ? {
          scaleOut: {
            redisUrl: o.redis,
            ...(o.edgeToken !== undefined ? { edgeToken: o.edgeToken } : {}),
            ...(o.redisWait !== undefined ? { redisWaitMs: o.redisWait * 1000 } : {}),
            ...(o.redisCa !== undefined ? { redisCa: await readPemFile("--redis-ca", o.redisCa) } : {}),
          },
        }
      : {}),
    onRound,
    log,
  });
  log(
    `coordinator: strategy ${JSON.stringify(scenario.strategy)}, ${scenario.rounds} ${asynchronous ? "versions" : "rounds"}; waiting for ${o.minClients} client(s) at ${handle.url}`,
  );
  if (handle.dashboardUrl) log(`coordinator: dashboard: ${handle.dashboardUrl}`);
  log(`coordinator: Prometheus metrics: ${handle.metricsUrl}`);
  // Ctrl-C: the files then hold every round that ended, and say the run was stopped.
  process.once("SIGINT", () => {
    stopping = true;
    log("coordinator: stopping (Ctrl-C)");
    void (files?.write(handle.loop.records, { stopReason: "stopped by SIGINT" }) ?? Promise.resolve())
      .then(() => handle.close())
      .finally(() => process.exit(130));
  });
  try {
    const result = await handle.run();
    if (!stopping)
      await files?.write(result.rounds, {
        final: result.final,
        ...(result.stopReason ? { stopReason: result.stopReason } : {}),
      });
    log(
      `done: final accuracy ${result.final.accuracy.toFixed(4)}${result.modelPath ? `; model at ${result.modelPath}` : ""}${outDir ? `; report at ${outDir}/report.html` : ""}`,
    );
  } finally {
    await handle.close();
  }
}

async function authModeOf(o: Options): Promise<AuthMode> {
  return o.allow
    ? { kind: "allowlist", publicKeys: await readAllowlist(o.allow) }
    : o.token
      ? { kind: "token", token: o.token }
      : { kind: "open" };
}

/** What the dashboard lists as this coordinator's configuration; tokens and key files stay out. */
function coordinatorDashboard(o: Options, scenario: Federation, strategy: string): DashboardOptions {
  const { name: _name, ...strategyOptions } = scenario.strategy;
  const dp = scenario.privacy?.dp;
  const privacy = [
    dp ? `${dp.mode} DP (z=${dp.noiseMultiplier}, S=${dp.clipNorm}, δ=${dp.delta})` : "",
    scenario.privacy?.secagg ? `SecAgg (${scenario.privacy.secagg.graph})` : "",
    scenario.privacy?.envelope ? "envelopes" : "",
  ].filter(Boolean);
  return {
    config: {
      model: scenario.initModel ?? scenario.model,
      "evaluation data": scenario.dataset.name,
      strategy,
      ...(Object.keys(strategyOptions).length > 0
        ? { "strategy options": JSON.stringify(strategyOptions) }
        : {}),
      rounds: scenario.rounds,
      "min clients": o.minClients,
      "clients per round": scenario.clientsPerRound ?? `fraction ${scenario.fractionFit}`,
      "local epochs (E)": scenario.fit.epochs,
      "batch size (B)": scenario.fit.batchSize,
      "learning rate": scenario.fit.learningRate,
      "round deadline (s)": scenario.roundDeadlineSeconds,
      admission: o.allow ? "allowlist" : o.token ? "token" : "open",
      tls: o.tlsCert !== undefined,
      privacy: privacy.length > 0 ? privacy.join(", ") : "none",
      seed: scenario.seed,
    },
    ...(dp?.targetEpsilon !== undefined ? { targetEpsilon: dp.targetEpsilon } : {}),
  };
}
