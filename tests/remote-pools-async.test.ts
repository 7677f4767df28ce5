import { mkdtemp, readFile, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ErrorCode } from "../common/errors.js";
import type { RunPoolEvent } from "../scenarios/remote-pools.js";
import type { RunSummary } from "../scenarios/report.js";
import { runScenario } from "../scenarios/runner.js";
import { parseScenario, type ScenarioInput } from "../scenarios/schema.js";
import { type EdgeHandle, startEdge } from "../server/edges/edge-node.js";
import type { RoundRecord } from "../server/round-record.js";
import { ensureBuilt } from "./helpers/built-cli.js";
import { type CliProcess, killAllCli, signalGroup } from "./helpers/cli-process.js";
import { assignedAt, assignments, hostedBy, POOL_TOKEN, shares, startPool } from "./helpers/pool-hosts.js";
import { TestRedis } from "./helpers/redis.js";

/**
 * Asynchronous strategies (FedBuff) over pools on other hosts (docs/SCALE-OUT.md), on loopback:
 * the run in this process, every pool a real `fedsim pool` process with its own workers. With no
 * rounds to wait for, pools rebalance between the loop's steps and only idle clients move.
 */
const SEED = 7;
const REMOTE = { host: "127.0.0.1", port: 0, token: POOL_TOKEN, minPools: 2, runId: "test-run" };

function scenario(overrides: Partial<ScenarioInput>) {
  return parseScenario({
    name: "remote-pools-async",
    seed: SEED,
    backend: "cpu",
    dataset: { name: "mnist", limitTrain: 600, limitTest: 200 },
    model: "tiny-mlp",
    clients: 12,
    rounds: 6,
    processes: 0,
    roundDeadlineSeconds: 120,
    fit: { epochs: 1, batchSize: 20, learningRate: 0.1 },
    strategy: { name: "fedbuff", concurrency: 4, bufferSize: 2 },
    remotePools: REMOTE,
    ...overrides,
  });
}

/** What a run on the virtual clock decides, without wall-clock times or wire bytes (one weight send per pool). */
function simulatedPart(summary: RunSummary) {
  return {
    rounds: summary.rounds.map((r) => ({
      round: r.round,
      accuracy: r.accuracy,
      loss: r.loss,
      participants: r.participants,
      failures: r.failures,
      staleness: r.staleness,
      simulatedStart: r.simulatedStart,
      simulatedSeconds: r.simulatedSeconds,
    })),
    updates: (summary.updates ?? []).map(({ seconds: _wall, ...rest }) => rest),
    final: summary.final,
  };
}

function poolsOf(summary: RunSummary, k: number): Record<string, number> {
  return Object.fromEntries((summary.rounds.at(k)?.pools ?? []).map((p) => [p.name, p.clients]));
}

let tmp: string;
beforeAll(async () => {
  tmp = await mkdtemp(path.join(os.tmpdir(), "fedsim-pools-async-"));
  await ensureBuilt();
}, 300_000);

afterAll(async () => {
  killAllCli();
  await rm(tmp, { recursive: true, force: true });
});

describe("remote pools with an asynchronous strategy", () => {
  it("FedBuff on the virtual clock over two pools reaches its versions, equal to a single-host run", async () => {
    const virtual = {
      clock: "virtual" as const,
      roundDeadlineSeconds: 600,
      virtual: {
        devices: {
          profiles: [
            { name: "slow", share: 1, speed: 0.5, downlinkMbps: 5, uplinkMbps: 2, latencyMs: 50 },
            { name: "fast", share: 1, speed: 1, downlinkMbps: 20, uplinkMbps: 5, latencyMs: 30 },
          ],
        },
        secondsPerExample: 0.1,
      },
    };
    const events: RunPoolEvent[] = [];
    const remote = await runScenario(scenario(virtual), {
      onPoolEvent: (event) => {
        events.push(event);
        if (event.type !== "listening") return;
        startPool(event.url, 1, "a");
        startPool(event.url, 2, "b");
      },
    });
    const { remotePools: _none, ...alone } = scenario(virtual);
    const single = await runScenario(parseScenario(alone), { processes: 0 });

    expect(remote.rounds).toHaveLength(6);
    expect(remote.stopReason).toBeUndefined();
    expect(remote.final.accuracy).toBeGreaterThan(remote.initial.accuracy);
    expect(simulatedPart(remote)).toEqual(simulatedPart(single));
    // Nobody came or went: one spread by cores, recorded on every version.
    expect(assignments(events).map((a) => shares(a))).toEqual([{ a: 4, b: 8 }]);
    for (let k = 0; k < remote.rounds.length; k++) expect(poolsOf(remote, k)).toEqual({ a: 4, b: 8 });
    expect(single.rounds[0].pools).toBeUndefined();
  }, 300_000);

  it("a pool killed mid-run costs only its fits in flight, typed; its clients go to the other pool", async () => {
    const events: RunPoolEvent[] = [];
    const started: Record<string, CliProcess> = {};
    const outDir = path.join(tmp, "killed");
    // More fits in flight than one pool hosts clients: once "doomed" is frozen, some of them wait on it.
    const summary = await runScenario(
      scenario({ rounds: 5, strategy: { name: "fedbuff", concurrency: 8, bufferSize: 2 } }),
      {
        outDir,
        onPoolEvent: (event) => {
          events.push(event);
          if (event.type !== "listening") return;
          started.doomed = startPool(event.url, 1, "doomed");
          started.survivor = startPool(event.url, 1, "survivor");
        },
        log: (line) => {
          // Frozen as soon as the clients are spread, before any fit reaches it: the fits sent to
          // its clients then wait on it for certain, and none of its replies can slip out first.
          if (line.startsWith("pools: version 1:")) signalGroup(started.doomed, "SIGSTOP");
          if (line.startsWith("async: version 3:")) signalGroup(started.doomed, "SIGKILL");
        },
      },
    );
    expect(summary.rounds).toHaveLength(5);
    expect(summary.stopReason).toBeUndefined();
    expect(summary.final.accuracy).toBeGreaterThan(summary.initial.accuracy);
    expect(shares(events, 1)).toEqual({ doomed: 6, survivor: 6 });
    const doomed = hostedBy(assignedAt(events, 1), "doomed", SEED);
    const failed = summary.timeline.filter((t) => t.outcome !== "ok");
    expect(failed.length).toBeGreaterThan(0);
    expect(failed.length).toBeLessThanOrEqual(8);
    expect(failed.every((t) => doomed.has(t.clientId) && t.outcome === "disconnect")).toBe(true);
    const records = (await readFile(path.join(outDir, "metrics.jsonl"), "utf8"))
      .trim()
      .split("\n")
      .map((line) => JSON.parse(line) as RoundRecord);
    const details = records.flatMap((r) => r.failureDetails);
    expect(details).toHaveLength(failed.length);
    expect(new Set(details.map((d) => d.code))).toEqual(new Set([ErrorCode.CLIENT_DISCONNECTED]));
    const left = events.findIndex((e) => e.type === "left" && e.pool.name === "doomed");
    expect(left).toBeGreaterThan(0);
    const after = assignments(events.slice(left));
    expect(after.map((a) => shares(a))).toEqual([{ survivor: 12 }]);
    expect(poolsOf(summary, 0)).toEqual({ doomed: 6, survivor: 6 });
    expect(poolsOf(summary, -1)).toEqual({ survivor: 12 });
  }, 300_000);

  it("a pool that joins mid-run receives idle clients, and no fit in flight is moved", async () => {
    const events: RunPoolEvent[] = [];
    const started: Record<string, CliProcess> = {};
    let url = "";
    const summary = await runScenario(scenario({ remotePools: { ...REMOTE, minPools: 1 } }), {
      onPoolEvent: (event) => {
        events.push(event);
        if (event.type === "listening") {
          url = event.url;
          started.first = startPool(url, 1, "first");
        }
        // The run stood still while "late" started (below); it goes on once "late" can host.
        if (event.type === "ready" && event.pool.name === "late") signalGroup(started.first, "SIGCONT");
      },
      log: (line) => {
        if (!line.startsWith("async: version 1:")) return;
        signalGroup(started.first, "SIGSTOP");
        started.late = startPool(url, 1, "late");
      },
    });
    expect(summary.rounds).toHaveLength(6);
    expect(summary.final.accuracy).toBeGreaterThan(summary.initial.accuracy);
    const spread = assignments(events).map((a) => shares(a));
    expect(spread[0]).toEqual({ first: 12 });
    expect(spread.at(-1)).toEqual({ first: 6, late: 6 });
    // A client moved while training would have failed its fit as a disconnect.
    expect(summary.timeline.filter((t) => t.outcome !== "ok")).toEqual([]);
    const lateIds = hostedBy(assignments(events).at(-1), "late", SEED);
    const trained = new Set((summary.updates ?? []).map((u) => u.clientId));
    expect([...lateIds].some((id) => trained.has(id))).toBe(true);
    expect(poolsOf(summary, -1)).toEqual({ first: 6, late: 6 });
  }, 300_000);

  it("FedBuff over a pool whose workers train behind an edge of the coordinator", async () => {
    const redis = await TestRedis.start();
    let edge: Promise<EdgeHandle> | undefined;
    const logs: string[] = [];
    try {
      const remotePools = { ...REMOTE, minPools: 1, edges: { redis: redis.url } };
      const summary = await runScenario(scenario({ rounds: 4, remotePools }), {
        log: (line) => void logs.push(line),
        onPoolEvent: (event) => {
          if (event.type !== "listening") return;
          const edgeOptions = { host: "127.0.0.1", port: 0, redisUrl: redis.url, coordinatorUrl: event.url };
          edge = startEdge({ ...edgeOptions, auth: { kind: "token", token: POOL_TOKEN } });
          void edge.then((e) => startPool(event.url, 1, "edged", "test-run", ["--connect", e.url]));
        },
      });
      expect(summary.rounds).toHaveLength(4);
      expect(summary.final.accuracy).toBeGreaterThan(summary.initial.accuracy);
      expect(summary.timeline.filter((t) => t.outcome !== "ok")).toEqual([]);
      expect(poolsOf(summary, -1)).toEqual({ edged: 12 });
      expect(logs).toContain("edges: edges forward each update as it arrives (fedbuff is asynchronous)");
    } finally {
      await (await edge)?.close();
      await redis.stop();
    }
  }, 300_000);
});
