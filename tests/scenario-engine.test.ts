import { mkdtemp, readFile, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { ClientNode } from "../client/node.js";
import { ModelWorkbench } from "../client/workbench.js";
import { clientData, loadScenarioData, partitionForClients } from "../scenarios/data.js";
import { defineScenario } from "../scenarios/define.js";
import { loadScenarioSource } from "../scenarios/load.js";
import { failureCount } from "../scenarios/report.js";
import { runScenario } from "../scenarios/runner.js";
import { parseScenario, type ScenarioInput } from "../scenarios/schema.js";
import { clientProfile } from "../scenarios/sim/heterogeneity.js";

/** Scripted federations end to end: a real coordinator, real Socket.IO clients in this process. */
function scenario(overrides: Partial<ScenarioInput>) {
  return parseScenario({
    name: "engine",
    seed: 9,
    backend: "cpu",
    dataset: { name: "mnist", limitTrain: 600, limitTest: 200 },
    model: "tiny-mlp",
    clients: 8,
    rounds: 3,
    processes: 0,
    roundDeadlineSeconds: 30,
    fit: { epochs: 1, batchSize: 20, learningRate: 0.1 },
    ...overrides,
  });
}

describe("scenario engine", () => {
  it("an offline schedule keeps clients out of the rounds it names, and they rejoin", async () => {
    const outDir = await mkdtemp(path.join(os.tmpdir(), "fedsim-engine-"));
    const summary = await runScenario(
      scenario({
        rounds: 4,
        availability: { schedule: [{ clients: [0, 1, 2], offline: { from: 2, to: 3 } }] },
      }),
      { processes: 0, outDir },
    );
    const report = await readFile(path.join(outDir, "report.html"), "utf8");
    expect(report.match(/<svg/g)?.length ?? 0).toBeGreaterThanOrEqual(4);
    expect(report).toContain("client-7");
    // What the report needs beyond the rounds: the configuration, the partitions, update norms.
    expect(summary.config).toMatchObject({
      model: "tiny-mlp",
      "fit.batchSize": 20,
      seed: 9,
      privacy: "none",
    });
    expect(summary.clientData?.sizes.total).toBe(600);
    expect(summary.clientData?.shown).toHaveLength(8);
    expect(summary.rounds.map((r) => r.updateNorms?.count)).toEqual([8, 5, 5, 8]);
    expect(summary.rounds.every((r) => (r.updateNorms?.min ?? 0) > 0 && r.startSeconds !== undefined)).toBe(
      true,
    );
    for (const id of ["client-labels", "update-norms"]) expect(report).toContain(`id="chart-${id}"`);
    expect(summary.training).toEqual({ path: "tfjs", reason: "the active backend is cpu, not native" });
    expect(summary.rounds.map((r) => r.offline)).toEqual([0, 3, 3, 0]);
    expect(summary.rounds.map((r) => r.sampled)).toEqual([8, 5, 5, 8]);
    expect(summary.rounds.map((r) => r.participants)).toEqual([8, 5, 5, 8]);
    expect(summary.rounds.every((r) => failureCount(r) === 0)).toBe(true);
    // The same three clients are missing from the timeline in rounds 2 and 3 only.
    const trained = (round: number) =>
      summary.timeline
        .filter((t) => t.round === round)
        .map((t) => t.label)
        .sort();
    expect(trained(2)).not.toContain("client-0");
    expect(trained(3)).not.toContain("client-2");
    expect(trained(4)).toContain("client-1");
  });

  it("a client slower than the deadline is reported as a timeout", async () => {
    const spec = scenario({
      rounds: 1,
      // Far apart, so a loaded machine cannot blur them: the fast clients need well under a
      // second of the default deadline, the slow ones wait a minute for their download.
      heterogeneity: {
        latencyMs: {
          kind: "tiers",
          tiers: [
            { fraction: 0.4, value: 60_000 },
            { fraction: 0.6, value: 1 },
          ],
        },
      },
      expect: { timeouts: { gte: 1 } },
    });
    const slow = Array.from({ length: spec.clients }, (_, i) => i).filter(
      (i) => clientProfile(spec.heterogeneity, spec.seed, i).latencyMs > 1000,
    );
    expect(slow.length).toBeGreaterThan(0);
    const summary = await runScenario(spec, { processes: 0 });
    expect(summary.rounds[0].failures.timeout).toBe(slow.length);
    expect(summary.rounds[0].participants).toBe(spec.clients - slow.length);
    const timedOut = summary.timeline.filter((t) => t.outcome === "timeout").map((t) => t.label);
    expect(timedOut.sort()).toEqual(slow.map((i) => `client-${i}`).sort());
    expect(summary.expectations).toEqual([
      { name: "timeouts", passed: true, detail: `timeouts ${slow.length} ≥ 1` },
    ]);
  });

  it("over-selection cancels the slowest clients and aggregates the rest", async () => {
    const summary = await runScenario(
      scenario({
        rounds: 1,
        clientsPerRound: 4,
        overSelection: 1,
        heterogeneity: {
          latencyMs: {
            kind: "tiers",
            tiers: [
              { fraction: 0.5, value: 1500 },
              { fraction: 0.5, value: 1 },
            ],
          },
        },
      }),
      { processes: 0 },
    );
    const round = summary.rounds[0];
    expect(round.sampled).toBe(8);
    expect(round.participants).toBe(4);
    expect(round.cancelled).toBe(4);
    expect(failureCount(round)).toBe(0);
  });

  it("hooks kill a seeded fraction of clients and the run records it", async () => {
    const killed: number[][] = [];
    const definition = defineScenario({
      scenario: { ...scenario({}), rounds: 3 },
      hooks: {
        async onRoundStart(ctx) {
          if (ctx.round === 2) killed.push(await ctx.kill({ fraction: 0.5 }));
          if (ctx.round === 3) await ctx.revive();
        },
        onRoundEnd(ctx, record) {
          if (ctx.round === 3) expect(record.participants).toBe(8);
        },
      },
    });
    const summary = await runScenario(definition.scenario, { processes: 0, hooks: definition.hooks });
    expect(killed[0]).toHaveLength(4);
    expect(summary.rounds.map((r) => r.participants)).toEqual([8, 4, 8]);
    const round2 = summary.timeline.filter((t) => t.round === 2).map((t) => Number(t.label?.slice(7)));
    expect(round2.some((i) => killed[0].includes(i))).toBe(false);
  });

  it("a hook can stop the run, and failed expectations are listed", async () => {
    const definition = defineScenario({
      scenario: { ...scenario({}), rounds: 5, expect: { rounds: { gte: 5 }, finalAccuracy: { gte: 0.99 } } },
      hooks: {
        onRoundEnd(ctx) {
          if (ctx.round === 2) ctx.stop("enough");
        },
      },
    });
    const summary = await runScenario(definition.scenario, { processes: 0, hooks: definition.hooks });
    expect(summary.rounds).toHaveLength(2);
    expect(summary.stopReason).toBe("enough");
    expect(summary.expectations.filter((e) => !e.passed).map((e) => e.name)).toEqual([
      "finalAccuracy",
      "rounds",
    ]);
  });

  it("the same seed gives the same sampling, dropouts and (on cpu) metrics", async () => {
    const spec = scenario({ clients: 10, clientsPerRound: 4, rounds: 3, dropouts: { probability: 0.3 } });
    const runs = [await runScenario(spec, { processes: 0 }), await runScenario(spec, { processes: 0 })];
    const picks = runs.map((s) =>
      s.timeline.map((t) => `${t.round}:${t.label}:${t.outcome === "ok" ? "ok" : "fail"}`).sort(),
    );
    expect(picks[0]).toEqual(picks[1]);
    expect(runs[0].rounds.map((r) => r.dropouts)).toEqual(runs[1].rounds.map((r) => r.dropouts));
    expect(runs[0].rounds.reduce((n, r) => n + r.dropouts, 0)).toBeGreaterThan(0);
    // On the cpu backend the metrics repeat exactly too.
    expect(runs[0].rounds.map((r) => [r.accuracy, r.loss])).toEqual(
      runs[1].rounds.map((r) => [r.accuracy, r.loss]),
    );
  });

  it("federated evaluation scores the global model on a sample of clients' held-out data", async () => {
    const summary = await runScenario(
      scenario({ rounds: 2, evaluation: { federated: { fraction: 0.5, holdout: 0.1 } } }),
      { processes: 0 },
    );
    for (const r of summary.rounds) {
      expect(r.federatedClients).toBe(4);
      // 32 held-out examples estimate the same model the 200-example test set scores.
      expect(Math.abs((r.federatedAccuracy ?? -1) - r.accuracy)).toBeLessThan(0.35);
    }
    // 600 examples over 8 clients: 75 each, of which ⌈7.5⌉ = 8 are held out and never trained on.
    expect(summary.rounds[0].participants).toBe(8);
    const totalTrained = summary.timeline.filter((t) => t.round === 1).length;
    expect(totalTrained).toBe(8);
  });

  it("200 virtual clients complete a run with a round of 20 sampled", async () => {
    const summary = await runScenario(
      scenario({
        clients: 200,
        clientsPerRound: 20,
        rounds: 2,
        dataset: { name: "mnist", limitTrain: 2000, limitTest: 200 },
      }),
      { processes: 0 },
    );
    expect(summary.clients).toEqual({ connected: 200, sampledPerRound: 20 });
    expect(summary.rounds.map((r) => [r.sampled, r.participants])).toEqual([
      [20, 20],
      [20, 20],
    ]);
    expect(summary.rounds.every((r) => r.bytesSent > 0 && r.bytesReceived > 0)).toBe(true);
  });
});

describe("external clients", () => {
  it("the run waits for an external client, which trains beside the virtual ones", async () => {
    const spec = scenario({
      clients: 3,
      rounds: 2,
      external: { clients: 1, host: "127.0.0.1", port: 0, token: "an-external-token-0123" },
    });
    const lines: string[] = [];
    let announced: (port: string) => void = () => {};
    const port = new Promise<string>((resolve) => (announced = resolve));
    const run = runScenario(spec, {
      processes: 0,
      log: (line) => {
        lines.push(line);
        const match = /--server http:\/\/[^:]+:(\d+)/.exec(line);
        if (match) announced(match[1]);
      },
    });
    const { train } = await loadScenarioData(spec);
    const external = new ClientNode({
      url: `http://127.0.0.1:${await port}`,
      token: "an-external-token-0123",
      data: clientData(partitionForClients({ ...spec, clients: 4 }, train), train, 3),
      workbench: new ModelWorkbench(),
      label: "external",
    });
    try {
      const summary = await run;
      expect(summary.clients.connected).toBe(4);
      expect(summary.rounds.map((r) => r.participants)).toEqual([4, 4]);
      expect(external.roundsTrained).toBe(2);
      expect(lines.some((l) => l.includes("waiting for 1 external client(s)"))).toBe(true);
    } finally {
      external.close();
    }
  });
});

describe("scenario scripts", () => {
  it("loads a defineScenario script with its hooks, and refuses others", async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), "fedsim-script-"));
    const definePath = path.resolve("scenarios/define.ts");
    const file = path.join(dir, "churn.ts");
    await writeFile(
      file,
      [
        `import { defineScenario } from ${JSON.stringify(definePath.replace(/\.ts$/, ".js"))};`,
        `export default defineScenario({ scenario: { name: "churn", clients: 4 }, hooks: { onRoundStart() {} } });`,
      ].join("\n"),
    );
    // Outside the package a .ts script is transpiled beside itself, so its imports resolve as written.
    const loaded = await loadScenarioSource(file);
    expect(loaded.scenario.name).toBe("churn");
    expect(loaded.scenario.clients).toBe(4);
    expect(typeof loaded.hooks.onRoundStart).toBe("function");
    const mjs = path.join(dir, "plain.mjs");
    await writeFile(mjs, "export default { scenario: { name: 'x' } };");
    await expect(loadScenarioSource(mjs)).rejects.toThrow(/export default defineScenario/);
    await expect(loadScenarioSource(path.join(dir, "missing.ts"))).rejects.toThrow(/not found/);
    await expect(loadScenarioSource(path.join(dir, "x.toml"))).rejects.toThrow(/unknown scenario file type/);
    expect(await readFile(file, "utf8")).toContain("defineScenario");
  });

  it("defineScenario validates the scenario at once", () => {
    expect(() => defineScenario({ scenario: { name: "bad", clients: 0 } })).toThrow(/invalid scenario/);
  });
});
