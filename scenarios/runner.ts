import type { ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import os from "node:os";
import path from "node:path";
import { clientIdOf } from "../common/crypto/identity.js";
import { ErrorCode, FedsimError } from "../common/errors.js";
import { virtualClientId } from "../common/pool-protocol.js";
import { registeredDataset } from "../common/registry.js";
import { isAsyncStrategy } from "../common/strategy/async-strategy.js";
import { initBackend } from "../common/tf/backend.js";
import { trainingPathFor } from "../common/train/fast-path-plan.js";
import { readCheckpoint } from "../server/checkpoint.js";
import { type CoordinatorHandle, startCoordinator } from "../server/coordinator.js";
import type { RoundRecord } from "../server/round-record.js";
import { scenarioDashboard } from "./dashboard-config.js";
import { loadScenarioData, partitionForClients } from "./data.js";
import type { ScenarioHooks } from "./define.js";
import { announceExternal, awaitExternal } from "./external.js";
import { clientsPerRound, evaluationControl, privacyPlugin } from "./federation.js";
import { PoolFleet } from "./pool-fleet.js";
import { compiledCli, forkPoolWorker } from "./pool-process.js";
import { RunProgress } from "./progress.js";
import {
  ClientIndices,
  openRemotePools,
  type RemotePoolsRun,
  type RunPoolEvent,
  refuseRemotePoolMisuse,
  remotePoolCredentials,
} from "./remote-pools.js";
import { summarizeClientData } from "./report/client-data.js";
import { type PoolAssignment, poolAssignment } from "./report/pool-placement.js";
import { runConfigOf } from "./report/run-config.js";
import { buildRunSummary, formatTable, type RunSummary } from "./report.js";
import { writeRunFiles } from "./run-files.js";
import type { Scenario } from "./schema.js";
import { ScenarioScript } from "./script.js";
import { simulatedIdentity, simulatedPoolIdentity } from "./sim/pool.js";
import { type ControlledPool, startControlledPool } from "./sim/pool-control.js";
import { createStrategy } from "./strategy-factory.js";
import { buildVirtualClock } from "./virtual-clock.js";
import { wallDeadlineSeconds } from "./virtual-schema.js";

export interface RunOptions {
  outDir?: string;
  strategy?: string;
  backend?: Scenario["backend"];
  /** Client pool processes; default: one per core when the compiled CLI exists, else in-process. */
  processes?: number;
  log?: (line: string) => void;
  /** Print progress and the final table (the CLI); tests leave it off. */
  interactive?: boolean;
  /** Continue from the checkpoint in `outDir` (written after every round of an earlier run). */
  resume?: boolean;
  /** A TypeScript scenario's hooks (scenarios/define.ts). */
  hooks?: ScenarioHooks;
  /** Serve the live dashboard while the run lasts; with a token, to any peer that presents it. */
  dashboard?: { token?: string };
  /**
   * Modules (.js/.mjs/.ts) that register the scenario's custom client logic or dataset; each pool
   * process imports them before it starts. Without them such a run hosts its clients in this
   * process, where the definitions were made. `fedsim run FILE.ts` passes FILE.
   */
  modules?: string[];
  /** With `remotePools`: where pools join, and the pools coming, going and their shares. */
  onPoolEvent?: (event: RunPoolEvent) => void;
}

/**
 * Runs a scenario: a coordinator on loopback and the scenario's clients over real Socket.IO,
 * either in pool processes or in this process. Writes summary.json when given an out dir.
 */
export async function runScenario(scenario: Scenario, options: RunOptions = {}): Promise<RunSummary> {
  const started = performance.now();
  const log = options.log ?? (() => {});
  const data = await loadScenarioData(scenario);
  const strategy = createStrategy(scenario, options.strategy);
  const privacy = scenario.privacy;
  const parts = partitionForClients(scenario, data.train);
  // Envelopes and SecAgg need per-client identity keys: those runs keep one socket per client.
  const session =
    privacy?.envelope || privacy?.secagg ? undefined : { identity: simulatedPoolIdentity(scenario.seed) };
  const clientId = (index: number) =>
    session
      ? virtualClientId(session.identity.publicKey, index)
      : clientIdOf(simulatedIdentity(scenario.seed, index).publicKey);
  const wallDeadlineMs = Math.round(wallDeadlineSeconds(scenario) * 1000);
  const backend = options.backend ?? scenario.backend;
  // Measuring seconds per example trains the model here, on the backend the run will use.
  const virtual =
    scenario.clock === "virtual"
      ? await initBackend(backend, log).then(() =>
          buildVirtualClock(scenario, parts, clientId, data.train, log),
        )
      : undefined;
  const asynchronous = isAsyncStrategy(strategy);
  const expectedPerRound = clientsPerRound(scenario, strategy);
  const plugin = privacyPlugin(scenario, strategy, {
    // The largest partition bounds every client's example-count weight.
    maxWeight: parts.maxSize(),
    stageTimeoutMs: wallDeadlineMs,
    expectedClientsPerRound: expectedPerRound,
    log,
  });
  const progress = options.interactive ? new RunProgress(scenario.rounds) : null;
  if (options.resume && !options.outDir) {
    throw new FedsimError(
      ErrorCode.INVALID_CONFIG,
      "resume needs the run's output directory (--out/--resume DIR)",
    );
  }
  const resume = options.resume && options.outDir ? await readCheckpoint(options.outDir) : undefined;
  // A per-run secret token keeps anything else on this machine out of the simulation.
  const external = scenario.external;
  // Thousands of virtual clients take minutes to start and prove their keys on a loaded
  // machine; a run that started without them would sample only the early ones.
  const virtualWaitMs = 120_000 + 50 * scenario.clients;
  const remote = scenario.remotePools;
  // Pools are other processes: they see a client or dataset definition only by importing its module.
  const poolsNeedModules =
    scenario.client !== undefined || registeredDataset(scenario.dataset.name) !== undefined;
  const modules = (options.modules ?? []).map((m) => path.resolve(m));
  if (remote) refuseRemotePoolMisuse(poolsNeedModules, modules);
  const credentials = remote ? remotePoolCredentials(remote, external?.token) : undefined;
  const token = credentials?.token ?? external?.token ?? randomBytes(16).toString("hex");
  const hooks = options.hooks ?? {};
  // Lines the operator must see even without --verbose: the external clients' commands and absence.
  const say = options.interactive ? (line: string) => process.stdout.write(`${line}\n`) : log;
  let externalJoined = external?.clients ?? 0;
  let fleet: PoolFleet | undefined;
  let pools: RemotePoolsRun | undefined;
  const placements: PoolAssignment[] = [];
  const indexOf = new ClientIndices(scenario.clients, clientId);
  const script = ScenarioScript.needed(scenario, hooks)
    ? new ScenarioScript(
        scenario,
        {
          send: (command) => {
            if (pools) return pools.hub.send(command);
            if (!fleet) throw new FedsimError(ErrorCode.INTERNAL, "client pools are not started yet");
            return fleet.send(command);
          },
        },
        hooks,
        () => externalJoined,
        log,
      )
    : undefined;
  const onRound = async (record: RoundRecord) => {
    progress?.roundDone(record);
    await script?.afterRound(record);
    if (script?.stopRequested) coordinator.loop.stop(script.stopRequested);
  };
  const coordinator: CoordinatorHandle = await startCoordinator({
    // External clients reach the coordinator from other machines; virtual ones use loopback.
    ...(remote?.edges
      ? {
          scaleOut: {
            redisUrl: remote.edges.redis,
            ...(remote.edges.edgeToken ? { edgeToken: remote.edges.edgeToken } : {}),
          },
        }
      : {}),
    host: remote?.host ?? external?.host ?? "127.0.0.1",
    port: remote?.port ?? external?.port ?? 0,
    rounds: scenario.rounds,
    model: scenario.model,
    ...(scenario.initModel ? { initModel: scenario.initModel } : {}),
    ...(scenario.trainableLayers ? { trainableLayers: scenario.trainableLayers } : {}),
    testData: data.test,
    strategy,
    deadlineMs: wallDeadlineMs,
    // External clients are waited for once, before the first round (awaitExternal).
    minAvailableClients: scenario.clients,
    waitForClientsMs: virtualWaitMs,
    seed: scenario.seed,
    backend,
    auth: { kind: "token", token },
    ...(options.outDir ? { outDir: options.outDir } : {}),
    ...(resume ? { resume } : {}),
    checkpointContext: { scenario, strategy: options.strategy ?? null },
    ...(scenario.limits ? { limits: scenario.limits } : {}),
    ...(plugin ? { plugin: () => plugin } : {}),
    ...(asynchronous
      ? {
          asyncControl: {
            ...(privacy?.envelope ? { envelope: true } : {}),
            // Remote pools move idle clients between the loop's steps.
            ...(remote
              ? {
                  betweenSteps: async (version: number, training: () => ReadonlySet<string>) => {
                    await pools?.hub.betweenSteps(version, () => indexOf.of(training()));
                  },
                }
              : {}),
          },
        }
      : {}),
    ...(progress
      ? { onClientOutcome: (round, outcome, sampled) => progress.clientOutcome(round, outcome, sampled) }
      : {}),
    onRound,
    ...(options.dashboard ? { dashboard: scenarioDashboard(scenario, strategy.name) } : {}),
    ...(options.dashboard?.token !== undefined ? { dashboardToken: options.dashboard.token } : {}),
    roundControl: {
      ...(script ? { beforeRound: (round: number) => script.beforeRound(round) } : {}),
      // Remote pools rebalance before every round (the script does it through its sink).
      ...(remote && !script && !asynchronous
        ? { beforeRound: async (round: number) => void (await pools?.hub.beforeRound(round)) }
        : {}),
      ...(virtual ? { virtualClock: virtual.clock } : {}),
      ...evaluationControl(scenario, wallDeadlineMs),
    },
    log,
  });
  log(`run: backend ${coordinator.backend.name} (${coordinator.backend.reason})`);
  // The coordinator's process resolves the backend as the pools do, so its model answers for theirs.
  const training = trainingPathFor(coordinator.model, scenario.trainableLayers ?? null);
  log(
    training.path === "fast-path"
      ? "run: clients train through the native fast path (no tfjs autodiff)"
      : `run: clients train through tfjs autodiff (the native fast path does not apply: ${training.reason})`,
  );
  if (coordinator.dashboardUrl) {
    if (options.interactive) process.stdout.write(`dashboard: ${coordinator.dashboardUrl}\n`);
    else log(`run: dashboard at ${coordinator.dashboardUrl}`);
  }
  if (external) announceExternal(coordinator.url, token, scenario, say);

  const cli = compiledCli();
  const canFork = cli !== null && !(poolsNeedModules && modules.length === 0);
  const processes =
    options.processes ?? scenario.processes ?? (canFork ? Math.min(os.cpus().length, scenario.clients) : 0);
  if (processes > 0 && poolsNeedModules && modules.length === 0) {
    throw new FedsimError(
      ErrorCode.INVALID_CONFIG,
      "processes: pool processes cannot see the client or dataset defined in this process; pass modules (the files that define them) or processes: 0",
    );
  }
  const children: ChildProcess[] = [];
  const local: ControlledPool[] = [];
  log(
    session
      ? "run: virtual clients share one pool session per pool process"
      : "run: every virtual client has its own connection (envelopes and secure aggregation need per-client keys)",
  );
  try {
    if (remote && credentials) {
      pools = openRemotePools(coordinator, scenario, remote, credentials, {
        backend,
        modules: poolsNeedModules ? modules : [],
        localCores: options.processes ?? scenario.processes ?? 0,
        interactive: options.interactive === true,
        log,
        onEvent: (event) => {
          if (event.type === "assigned") placements.push(poolAssignment(event));
          options.onPoolEvent?.(event);
        },
      });
    } else if (processes > 0) {
      if (!cli)
        throw new FedsimError(
          ErrorCode.INVALID_CONFIG,
          "pool processes need the compiled CLI (npm run build)",
        );
      const poolUrl = loopbackUrl(coordinator.port, coordinator.url);
      const parts = Math.min(processes, scenario.clients);
      for (let part = 0; part < parts; part++) {
        // A stride, not a list: a list of 100,000 indices would not fit in an environment variable.
        const indices = { start: part, step: parts, count: Math.ceil((scenario.clients - part) / parts) };
        const spec = {
          url: poolUrl,
          token,
          scenario,
          clientIndices: indices,
          backend: options.backend ?? scenario.backend,
          session: session !== undefined,
          modules,
        };
        children.push(forkPoolWorker(cli, spec, parts, log));
      }
      fleet = PoolFleet.forked(children);
    } else {
      const pool = await startControlledPool({
        url: loopbackUrl(coordinator.port, coordinator.url),
        scenario,
        clientIndices: Array.from({ length: scenario.clients }, (_, i) => i),
        token,
        ...(session ? { session } : {}),
        log,
      });
      local.push(pool);
      fleet = PoolFleet.inProcess([pool]);
    }
    if (external) externalJoined = await awaitExternal(coordinator.sockets, scenario, virtualWaitMs, say);
    const result = await coordinator.run();
    progress?.stop();
    const summary = buildRunSummary({
      name: scenario.name,
      backend: coordinator.backend.name,
      training,
      strategy: strategy.name,
      seed: scenario.seed,
      sampling: coordinator.loop.samplingReproducible ? "seeded" : "csprng",
      clients: {
        connected: scenario.clients + externalJoined,
        sampledPerRound: expectedPerRound,
      },
      config: runConfigOf(scenario, strategy.name),
      clientData: summarizeClientData(
        parts,
        data.train.y,
        data.train.numClasses,
        scenario.partition.kind === "sample",
      ),
      initial: result.initial,
      records: result.rounds,
      final: result.final,
      ...(privacy?.dp ? { delta: privacy.dp.delta } : {}),
      seconds: (performance.now() - started) / 1000,
      ...(result.stopReason ? { stopReason: result.stopReason } : {}),
      expect: scenario.expect,
      labels: virtualClientLabels(scenario.clients, clientId),
      asynchronous,
      ...(remote ? { poolPlacement: placements } : {}),
      ...(virtual
        ? { virtualClock: { ...virtual.summary, simulatedSeconds: simulatedEnd(result.rounds) } }
        : {}),
    });
    if (options.outDir) await writeRunFiles(options.outDir, summary);
    if (options.interactive) {
      process.stdout.write(`\n${formatTable(summary.rounds, summary.final.epsilon !== undefined)}\n`);
    }
    return summary;
  } finally {
    await pools?.close();
    for (const pool of local) pool.close();
    await coordinator.close();
    for (const child of children) if (child.exitCode === null) child.kill("SIGTERM");
  }
}

/** Simulated seconds from the run's start to the end of its last round (0 before any round). */
function simulatedEnd(rounds: readonly RoundRecord[]): number {
  const last = rounds.at(-1);
  return (last?.simulatedStart ?? 0) + (last?.simulatedSeconds ?? 0);
}

/** Client id → "client-<index>" for the virtual clients, so reports name partitions, not key hashes. */
function virtualClientLabels(clients: number, clientId: (index: number) => string): Map<string, string> {
  const labels = new Map<string, string>();
  for (let i = 0; i < clients; i++) labels.set(clientId(i), `client-${i}`);
  return labels;
}

/** Virtual clients always dial loopback, even when the coordinator listens on every interface. */
function loopbackUrl(port: number, url: string): string {
  return `${url.startsWith("https") ? "https" : "http"}://127.0.0.1:${port}`;
}
