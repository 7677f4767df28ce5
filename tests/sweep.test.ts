import { existsSync } from "node:fs";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { clientIdOf } from "../common/crypto/identity.js";
import { ErrorCode, FedsimError } from "../common/errors.js";
import type { RunSummary } from "../scenarios/report.js";
import { parseScenario, type ScenarioInput } from "../scenarios/schema.js";
import { simulatedIdentity } from "../scenarios/sim/pool.js";
import { formatSweepTable, requestedStrategies, runSweep, type SweepReport } from "../scenarios/sweep.js";

function scenario(overrides: Partial<ScenarioInput> = {}) {
  return parseScenario({
    name: "sweep-test",
    seed: 8,
    backend: "cpu",
    dataset: { name: "mnist", limitTrain: 400, limitTest: 200 },
    model: "tiny-mlp",
    clients: 4,
    rounds: 2,
    processes: 0,
    roundDeadlineSeconds: 60,
    fit: { epochs: 1, batchSize: 20, learningRate: 0.1 },
    ...overrides,
  });
}

async function rejection(promise: Promise<unknown>): Promise<FedsimError> {
  const err = await promise.then(
    () => null,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(FedsimError);
  return err as FedsimError;
}

describe("strategy sweeps", () => {
  let dir = "";
  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), "fedsim-sweep-"));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("runs the scenario once per strategy and writes each summary plus sweep.json", async () => {
    const out = path.join(dir, "two");
    const started: string[] = [];
    const s = scenario({
      sweep: {
        strategies: ["fedavg", "fedmedian"],
        expect: { fedmedian: { finalAccuracy: { gte: 0 } } },
      },
    });
    const report = await runSweep(s, ["fedavg", "fedmedian"], {
      outDir: out,
      onStart: (name, i, total) => started.push(`${i + 1}/${total} ${name}`),
    });
    expect(started).toEqual(["1/2 fedavg", "2/2 fedmedian"]);

    const written = JSON.parse(await readFile(path.join(out, "sweep.json"), "utf8")) as SweepReport;
    expect(written).toEqual(JSON.parse(JSON.stringify(report)));
    expect(written.scenario).toBe("sweep-test");
    expect(written.results.map((r) => r.strategy)).toEqual(["fedavg", "fedmedian"]);
    for (const result of written.results) {
      const summary = JSON.parse(
        await readFile(path.join(out, result.strategy, "summary.json"), "utf8"),
      ) as RunSummary;
      expect(summary.strategy).toBe(result.strategy);
      expect(result.finalAccuracy).toBe(summary.final.accuracy);
      expect(result.finalLoss).toBe(summary.final.loss);
      expect(result.rounds).toHaveLength(2);
      expect(result.bestAccuracy).toBeGreaterThanOrEqual(result.finalAccuracy);
      // Both runs start from the same seeded model on the same data.
      expect(summary.initial).toEqual(
        (JSON.parse(await readFile(path.join(out, "fedavg", "summary.json"), "utf8")) as RunSummary).initial,
      );
      expect(result.finalAccuracy).toBeGreaterThan(summary.initial.accuracy + 0.1);
    }
    // Per-strategy expectations replace the scenario's own for that strategy only.
    expect(written.results[0].expectations).toEqual([]);
    expect(written.results[1].expectations.map((e) => e.passed)).toEqual([true]);

    const table = formatSweepTable(report).split("\n");
    expect(table[0]).toMatch(/strategy\s+final accuracy\s+best accuracy\s+final loss/);
    expect(table).toHaveLength(4);
    expect(table[2]).toContain(report.results[0].finalAccuracy.toFixed(4));
    expect(table[3].startsWith("fedmedian")).toBe(true);
  });

  it("checks every name before the first run, so a typo costs nothing", async () => {
    const out = path.join(dir, "typo");
    const err = await rejection(runSweep(scenario(), ["fedavg", "fedavgg"], { outDir: out }));
    expect(err.code).toBe(ErrorCode.INVALID_CONFIG);
    expect(err.message).toContain("fedavgg");
    expect(existsSync(out)).toBe(false);
    expect((await rejection(runSweep(scenario(), ["fedavg", "fedavg"]))).message).toMatch(/twice/);
    expect((await rejection(runSweep(scenario(), []))).message).toMatch(/empty/);
    expect((await rejection(runSweep(scenario(), ["../x"]))).message).toMatch(/not a strategy name/);
  });

  it("takes the strategies from --strategy a,b or from the scenario's sweep block", () => {
    const s = scenario({ sweep: { strategies: ["fedavg", "krum"] } });
    expect(requestedStrategies(s)).toEqual(["fedavg", "krum"]);
    expect(requestedStrategies(s, "fedmedian, fedavg")).toEqual(["fedmedian", "fedavg"]);
    expect(requestedStrategies(s, "fedavg")).toEqual(["fedavg"]);
    expect(requestedStrategies(scenario())).toEqual([]);
  });

  it("the schema refuses a strategy listed twice and expectations for a strategy not swept", () => {
    let err: unknown;
    try {
      scenario({
        sweep: { strategies: ["fedavg", "fedavg"], expect: { krum: { finalAccuracy: { gte: 0.5 } } } },
      });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(FedsimError);
    const details = (err as FedsimError).details;
    expect(details.some((d) => d.includes("sweep.strategies: fedavg listed twice"))).toBe(true);
    expect(details.some((d) => d.includes("sweep.expect.krum"))).toBe(true);
  });

  it("runs each strategy with its own overrides: FedAvg over-selects, FedBuff keeps M in flight", async () => {
    const s = scenario({
      clientsPerRound: 2,
      sweep: {
        strategies: ["fedavg", "fedbuff"],
        overrides: {
          fedavg: { overSelection: 0.5 },
          fedbuff: { rounds: 3, strategy: { concurrency: 3, bufferSize: 2 } },
        },
      },
    });
    // Without the per-strategy split, fedbuff would be refused for the over-selection.
    const report = await runSweep(s, ["fedavg", "fedbuff"], { outDir: path.join(dir, "overrides") });
    const summaries = await Promise.all(
      ["fedavg", "fedbuff"].map(
        async (name) =>
          JSON.parse(await readFile(path.join(dir, "overrides", name, "summary.json"), "utf8")) as RunSummary,
      ),
    );
    const [fedavg, fedbuff] = summaries;
    expect(fedavg.rounds).toHaveLength(2);
    for (const r of fedavg.rounds) expect(r.sampled).toBe(3);
    expect(fedbuff.strategy).toBe("fedbuff");
    expect(fedbuff.rounds).toHaveLength(3);
    expect(fedbuff.clients).toMatchObject({ sampledPerRound: 3 });
    for (const r of fedbuff.rounds) expect(r.participants).toBe(2);
    expect(report.results.map((r) => r.strategy)).toEqual(["fedavg", "fedbuff"]);
  }, 60_000);

  it("the schema checks each override as the scenario it makes, naming sweep.overrides.<strategy>", () => {
    const details = (sweep: Record<string, unknown>): string => {
      try {
        scenario({ sweep: sweep as ScenarioInput["sweep"] });
      } catch (e) {
        expect(e).toBeInstanceOf(FedsimError);
        return (e as FedsimError).details.join("\n");
      }
      return "";
    };
    const strategies = ["fedavg", "fedbuff"];
    expect(details({ strategies, overrides: { fedavg: { overSelection: -1 } } })).toMatch(
      /sweep\.overrides\.fedavg: overSelection/,
    );
    expect(details({ strategies, overrides: { krum: { rounds: 3 } } })).toMatch(
      /sweep\.overrides\.krum: not one of sweep\.strategies/,
    );
    // Only the fields a comparison may vary: the data, clients and seed stay the scenario's.
    expect(details({ strategies, overrides: { fedavg: { clients: 9 } } })).toMatch(
      /sweep\.overrides\.fedavg.*clients/,
    );
    expect(details({ strategies, overrides: { fedbuff: { strategy: { name: "krum" } } } })).toMatch(
      /sweep\.overrides\.fedbuff.*strategy\.name/,
    );
    expect(details({ strategies, overrides: { fedbuff: { strategy: { bufferSize: 0 } } } })).toMatch(
      /sweep\.overrides\.fedbuff: strategy\.bufferSize/,
    );
  });

  it("virtual clients get the same ids on every run of a seed, so every strategy samples the same clients", () => {
    const ids = (seed: number) => [0, 1, 2].map((i) => clientIdOf(simulatedIdentity(seed, i).publicKey));
    expect(ids(8)).toEqual(ids(8));
    expect(new Set(ids(8)).size).toBe(3);
    expect(ids(9)).not.toEqual(ids(8));
  });
});
