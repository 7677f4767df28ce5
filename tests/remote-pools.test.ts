import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ErrorCode } from "../common/errors.js";
import { virtualClientId } from "../common/pool-protocol.js";
import type { PoolHubEvent } from "../scenarios/pool-hub.js";
import type { RunPoolEvent } from "../scenarios/remote-pools.js";
import { runScenario } from "../scenarios/runner.js";
import { parseScenario, type ScenarioInput } from "../scenarios/schema.js";
import { simulatedPoolIdentity } from "../scenarios/sim/pool.js";
import type { RoundRecord } from "../server/round-record.js";
import { ensureBuilt } from "./helpers/built-cli.js";
import { type CliProcess, killAllCli, signalGroup, spawnCli } from "./helpers/cli-process.js";

/**
 * Pools on other hosts (docs/SCALE-OUT.md), here on loopback: the run in this process, every
 * pool a real `fedsim pool` process with its own worker processes.
 */
const TOKEN = "remote-pools-test-token";
const SEED = 5;

function scenario(overrides: Partial<ScenarioInput>) {
  return parseScenario({
    name: "remote-pools",
    seed: SEED,
    backend: "cpu",
    dataset: { name: "mnist", limitTrain: 600, limitTest: 200 },
    model: "tiny-mlp",
    clients: 12,
    rounds: 3,
    processes: 0,
    roundDeadlineSeconds: 120,
    fit: { epochs: 1, batchSize: 20, learningRate: 0.1 },
    remotePools: { host: "127.0.0.1", port: 0, token: TOKEN, minPools: 2, runId: "test-run" },
    ...overrides,
  });
}

function startPool(url: string, cores: number, name: string, run = "test-run"): CliProcess {
  const args = ["pool", "--server", url, "--run", run, "--token", TOKEN, "--cores", String(cores)];
  return spawnCli([...args, "--name", name], { group: true });
}

/** The pool's share in the round's assignment, by name. */
function shares(events: readonly RunPoolEvent[], round: number): Record<string, number> {
  const assigned = events.find(
    (e): e is Extract<PoolHubEvent, { type: "assigned" }> => e.type === "assigned" && e.round === round,
  );
  return Object.fromEntries((assigned?.pools ?? []).map((p) => [p.name, p.hosted.length]));
}

function hostedBy(events: readonly RunPoolEvent[], round: number, name: string): Set<string> {
  const assigned = events.find(
    (e): e is Extract<PoolHubEvent, { type: "assigned" }> => e.type === "assigned" && e.round === round,
  );
  const pool = assigned?.pools.find((p) => p.name === name);
  const key = simulatedPoolIdentity(SEED).publicKey;
  return new Set((pool?.hosted ?? []).map((i) => virtualClientId(key, i)));
}

beforeAll(async () => {
  await ensureBuilt();
}, 300_000);

afterAll(() => killAllCli());

describe("remote pools", () => {
  it("spreads the clients over two pools by their cores, and refuses a pool naming another run", async () => {
    const events: RunPoolEvent[] = [];
    let wrongRun: CliProcess | undefined;
    const summary = await runScenario(scenario({ rounds: 2 }), {
      onPoolEvent: (event) => {
        events.push(event);
        if (event.type !== "listening") return;
        startPool(event.url, 1, "small");
        startPool(event.url, 2, "large");
        wrongRun = startPool(event.url, 1, "stray", "another-run");
      },
    });
    expect(shares(events, 1)).toEqual({ small: 4, large: 8 });
    expect(summary.rounds.map((r) => r.participants)).toEqual([12, 12]);
    expect(summary.final.accuracy).toBeGreaterThan(summary.initial.accuracy);
    const refused = await (wrongRun as CliProcess).done;
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain(ErrorCode.WRONG_RUN);
  }, 300_000);

  it("a pool killed mid-round costs that round its clients as typed failures; the next round runs on the other", async () => {
    const events: RunPoolEvent[] = [];
    const started: Record<string, CliProcess> = {};
    let round = 0;
    const records: RoundRecord[] = [];
    await runScenario(scenario({}), {
      onPoolEvent: (event) => {
        events.push(event);
        if (event.type !== "listening") return;
        started.doomed = startPool(event.url, 1, "doomed");
        started.survivor = startPool(event.url, 1, "survivor");
      },
      hooks: {
        onRoundStart: ({ round: r }) => {
          round = r;
          // Frozen before its clients are sampled, so their fits can only end in the kill below.
          if (r === 2) signalGroup(started.doomed, "SIGSTOP");
        },
        onRoundEnd: (_, record) => void records.push(record),
      },
      log: (line) => {
        if (round === 2 && line.startsWith("configureFit:")) signalGroup(started.doomed, "SIGKILL");
      },
    });
    expect(shares(events, 1)).toEqual({ doomed: 6, survivor: 6 });
    const second = records[1];
    const doomed = hostedBy(events, 1, "doomed");
    expect(second.participants).toBe(6);
    expect(second.failures).toBe(6);
    expect(second.failureDetails.every((f) => doomed.has(f.clientId))).toBe(true);
    expect(second.failureDetails.map((f) => f.code)).toEqual(Array(6).fill(ErrorCode.CLIENT_DISCONNECTED));
    expect(second.failuresByKind).toEqual({ disconnect: 6 });
    expect(second.kept).toBeUndefined();
    expect(shares(events, 3)).toEqual({ survivor: 12 });
    expect(records[2].participants).toBe(12);
    expect(events.some((e) => e.type === "left" && e.pool.name === "doomed")).toBe(true);
  }, 300_000);

  it("a pool that joins mid-run takes its share from the next round", async () => {
    const events: RunPoolEvent[] = [];
    const records: RoundRecord[] = [];
    let url = "";
    let lateReady = () => {};
    const late = new Promise<void>((resolve) => {
      lateReady = resolve;
    });
    const remotePools = { host: "127.0.0.1", port: 0, token: TOKEN, minPools: 1, runId: "test-run" };
    await runScenario(scenario({ remotePools }), {
      onPoolEvent: (event) => {
        events.push(event);
        if (event.type === "listening") {
          url = event.url;
          startPool(url, 1, "first");
        }
        if (event.type === "ready" && event.pool.name === "late") lateReady();
      },
      hooks: {
        onRoundEnd: async ({ round }, record) => {
          records.push(record);
          if (round !== 1) return;
          // The pool joins once round 1 is over; the run waits here until it is ready.
          startPool(url, 1, "late");
          await late;
        },
      },
    });
    expect(shares(events, 1)).toEqual({ first: 12 });
    expect(shares(events, 2)).toEqual({ first: 6, late: 6 });
    const lateIds = hostedBy(events, 2, "late");
    const trained = new Set(records[1].clients.filter((c) => c.outcome === "ok").map((c) => c.clientId));
    expect(lateIds.size).toBe(6);
    expect([...lateIds].every((id) => trained.has(id))).toBe(true);
    expect(records.map((r) => r.participants)).toEqual([12, 12, 12]);
  }, 300_000);
});
