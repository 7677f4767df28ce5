import { afterEach, describe, expect, it } from "vitest";
import { scenarioDashboard } from "../scenarios/dashboard-config.js";
import { runScenario } from "../scenarios/runner.js";
import { parseScenario, type ScenarioInput } from "../scenarios/schema.js";
import type { DashboardClient, DashboardRound } from "../server/observe/dashboard-events.js";
import { DashboardRecorder } from "./helpers/observe.js";

const TOKEN = "run-dashboard-token-0123";

function scenario(overrides: Partial<ScenarioInput> = {}) {
  return parseScenario({
    name: "dashboard-run",
    seed: 3,
    backend: "cpu",
    dataset: { name: "mnist", limitTrain: 300, limitTest: 100 },
    model: "tiny-mlp",
    clients: 3,
    rounds: 2,
    processes: 0,
    roundDeadlineSeconds: 30,
    fit: { epochs: 1, batchSize: 20, learningRate: 0.1 },
    ...overrides,
  });
}

describe("fedsim run with the dashboard", () => {
  const recorders: DashboardRecorder[] = [];
  afterEach(() => {
    for (const r of recorders.splice(0)) r.close();
  });

  it("serves the run's dashboard on its coordinator: the scenario as configuration, pool clients uploading", async () => {
    let url = "";
    const seen: DashboardRound[] = [];
    let watcher: DashboardRecorder | undefined;
    const summary = await runScenario(scenario(), {
      processes: 0,
      dashboard: { token: TOKEN },
      log: (line) => {
        url = /^run: dashboard at (\S+)$/.exec(line)?.[1] ?? url;
      },
      hooks: {
        // The run waits here, so the socket sees each round before the next starts.
        async onRoundEnd(_ctx, record) {
          if (!watcher) {
            watcher = new DashboardRecorder(new URL(url).origin, { token: TOKEN });
            recorders.push(watcher);
            const snapshot = await watcher.snapshot();
            expect(snapshot.config).toMatchObject({
              scenario: "dashboard-run",
              model: "tiny-mlp",
              strategy: "fedavg",
            });
            seen.push(...snapshot.rounds);
            return;
          }
          const event = await watcher.waitFor(
            (e) => e.name === "round" && (e.payload as DashboardRound).round === record.round,
          );
          seen.push(event.payload as DashboardRound);
        },
      },
    });
    expect(url).toMatch(new RegExp(`^http://127\\.0\\.0\\.1:\\d+/dashboard/\\?token=${TOKEN}$`));
    expect(seen.map((r) => [r.round, r.accuracy])).toEqual(summary.rounds.map((r) => [r.round, r.accuracy]));
    // Round 2 was watched live: every virtual client (one pool session) went through every state.
    const changes = (watcher?.events ?? [])
      .filter((e) => e.name === "clients" && (e.payload as { round: number }).round === 2)
      .flatMap((e) => (e.payload as { clients: DashboardClient[] }).clients);
    const ids = [...new Set(changes.map((c) => c.clientId))];
    expect(ids).toHaveLength(3);
    for (const id of ids) {
      expect(changes.filter((c) => c.clientId === id).map((c) => c.state)).toEqual([
        "sampled",
        "training",
        "uploading",
        "done",
      ]);
    }
  });

  it("lists a scenario's configuration without its admission token", () => {
    const s = scenario({
      external: { clients: 1, host: "127.0.0.1", port: 0, token: "external-secret-token-0123" },
      privacy: { dp: { mode: "central", noiseMultiplier: 1.1, clipNorm: 0.5, targetEpsilon: 4 } },
      strategy: { name: "fedavgm", momentum: 0.5 },
      partition: { kind: "dirichlet", alpha: 0.3 },
    });
    const d = scenarioDashboard(s, "fedavgm");
    expect(d.targetEpsilon).toBe(4);
    expect(d.config).toMatchObject({
      clients: 4,
      strategy: "fedavgm",
      "strategy options": "momentum=0.5",
      partition: "kind=dirichlet, alpha=0.3",
      privacy: "central DP (z=1.1, S=0.5, δ=0.00001)",
    });
    expect(JSON.stringify(d)).not.toContain("external-secret-token-0123");
  });
});
