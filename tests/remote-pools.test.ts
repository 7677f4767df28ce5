import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ErrorCode } from "../common/errors.js";
import type { RunPoolEvent } from "../scenarios/remote-pools.js";
import { runScenario } from "../scenarios/runner.js";
import { parseScenario, type ScenarioInput } from "../scenarios/schema.js";
import type { RoundRecord } from "../server/round-record.js";
import { ensureBuilt } from "./helpers/built-cli.js";
import { type CliProcess, killAllCli, signalGroup } from "./helpers/cli-process.js";
import { assignedAt, hostedBy, POOL_TOKEN, shares, startPool } from "./helpers/pool-hosts.js";

/**
 * Pools on other hosts (docs/SCALE-OUT.md), here on loopback: the run in this process, every
 * pool a real `fedsim pool` process with its own worker processes.
 */
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
    remotePools: { host: "127.0.0.1", port: 0, token: POOL_TOKEN, minPools: 2, runId: "test-run" },
    ...overrides,
  });
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
    // summary.json says which pool hosted how many clients, round by round.
    for (const r of summary.rounds) {
      const pools = Object.fromEntries((r.pools ?? []).map((p) => [p.name, [p.cores, p.clients]]));
      expect(pools).toEqual({ small: [1, 4], large: [2, 8] });
    }
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
    const doomed = hostedBy(assignedAt(events, 1), "doomed", SEED);
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
    const remotePools = { host: "127.0.0.1", port: 0, token: POOL_TOKEN, minPools: 1, runId: "test-run" };
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
    const lateIds = hostedBy(assignedAt(events, 2), "late", SEED);
    const trained = new Set(records[1].clients.filter((c) => c.outcome === "ok").map((c) => c.clientId));
    expect(lateIds.size).toBe(6);
    expect([...lateIds].every((id) => trained.has(id))).toBe(true);
    expect(records.map((r) => r.participants)).toEqual([12, 12, 12]);
  }, 300_000);
});
