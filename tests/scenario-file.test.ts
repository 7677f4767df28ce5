import { mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ErrorCode, FedsimError } from "../common/errors.js";
import { loadScenarioFile, parseScenario } from "../scenarios/schema.js";

/** Scenario files: every mistake is INVALID_SCENARIO with details that name the file and field. */
describe("scenario files", () => {
  let dir = "";
  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), "fedsim-scenario-"));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  async function writeScenario(name: string, text: string): Promise<string> {
    const file = path.join(dir, name);
    await writeFile(file, text);
    return file;
  }

  /** The FedsimError a load throws; fails the test when the load succeeds or throws anything else. */
  async function loadError(file: string): Promise<FedsimError> {
    const err = await loadScenarioFile(file).then(
      () => null,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(FedsimError);
    const fedsimError = err as FedsimError;
    expect(fedsimError.code).toBe(ErrorCode.INVALID_SCENARIO);
    expect(fedsimError.message).toContain(file);
    return fedsimError;
  }

  it("refuses a file that is not valid YAML, naming the file", async () => {
    const file = await writeScenario("broken.yaml", "name: broken\nfit: [epochs: 1\n  batchSize: 3\n");
    const err = await loadError(file);
    expect(err.message).toContain("not valid YAML");
    expect(err.details).toHaveLength(1);
    expect(err.details[0].startsWith(`${file}: `)).toBe(true);
  });

  it("refuses a file that is not valid JSON, naming the file", async () => {
    const file = await writeScenario("broken.json", '{"name": "broken", }');
    const err = await loadError(file);
    expect(err.message).toContain("not valid JSON");
    expect(err.details[0].startsWith(`${file}: `)).toBe(true);
  });

  it("refuses a file that does not exist", async () => {
    const err = await loadError(path.join(dir, "missing.yaml"));
    expect(err.message).toContain("cannot read");
  });

  it("refuses unknown fields, at the top level and nested, naming where they are", async () => {
    const file = await writeScenario("unknown.yaml", "name: typo\ncolour: red\nfit:\n  batchsize: 10\n");
    const err = await loadError(file);
    const top = err.details.find((d) => d.includes("colour"));
    const nested = err.details.find((d) => d.includes("batchsize"));
    expect(top).toBeDefined();
    expect(nested).toBeDefined();
    expect(top?.startsWith(`${file}: `)).toBe(true);
    expect(nested?.startsWith(`${file}: fit.batchsize: `)).toBe(true);
  });

  it("offers the nearest field for a misspelt key, one line per key", async () => {
    const file = await writeScenario(
      "typo.yaml",
      "name: typo\nroundz: 3\nfit:\n  learningrate: 0.1\npartition:\n  kind: shards\n  shardPerClient: 2\n",
    );
    const err = await loadError(file);
    expect(err.details).toContain(`${file}: roundz: unknown field; did you mean "rounds"?`);
    expect(err.details).toContain(`${file}: fit.learningrate: unknown field; did you mean "learningRate"?`);
    expect(err.details).toContain(
      `${file}: partition.shardPerClient: unknown field; did you mean "shardsPerClient"?`,
    );
  });

  it("offers the nearest name for a misspelt strategy, dataset, partition kind or model", async () => {
    const file = await writeScenario(
      "names.yaml",
      "name: names\nstrategy: fedprx\ndataset: mnsit\npartition:\n  kind: dirichlett\n  alpha: 1\n",
    );
    const err = await loadError(file);
    expect(err.details.find((d) => d.startsWith(`${file}: strategy.name: `))).toMatch(
      /did you mean "fedprox"\?$/,
    );
    expect(err.details.find((d) => d.startsWith(`${file}: dataset.name: `))).toMatch(
      /did you mean "mnist"\?$/,
    );
    expect(err.details.find((d) => d.startsWith(`${file}: partition.kind: `))).toMatch(
      /did you mean "dirichlet"\?$/,
    );
    const model = await loadError(await writeScenario("model.yaml", "name: model\nmodel: mnist-cnm\n"));
    expect(model.details).toHaveLength(1);
    expect(model.details[0]).toMatch(
      /model\.yaml: model: unknown model "mnist-cnm"; did you mean "mnist-cnn"\?/,
    );
    // A name nothing like any model gets the list, not a guess.
    const far = await loadError(await writeScenario("far.yaml", "name: far\nmodel: resnet152\n"));
    expect(far.details[0]).not.toMatch(/did you mean/);
    expect(far.details[0]).toContain("mnist-2nn");
  });

  it("takes `strategy: NAME` and `dataset: NAME` as shorthand, like `model: NAME`", async () => {
    const file = await writeScenario(
      "short.yaml",
      "name: short\nstrategy: fedmedian\ndataset: fashion-mnist\n",
    );
    const scenario = await loadScenarioFile(file);
    expect(scenario.strategy).toEqual({ name: "fedmedian" });
    expect(scenario.dataset).toEqual({ name: "fashion-mnist" });
    expect(parseScenario({ name: "x", strategy: "fedavgm" }).strategy.name).toBe("fedavgm");
  });

  it("refuses rounds: 0 and an expectation no run can meet", async () => {
    const file = await writeScenario(
      "unsafe.yaml",
      "name: unsafe\nrounds: 0\nexpect:\n  finalAccuracy: { gte: 0.9, lte: 0.5 }\n",
    );
    const zero = await loadError(file);
    expect(zero.details.some((d) => d.startsWith(`${file}: rounds: `))).toBe(true);
    const bounds = await loadError(
      await writeScenario("bounds.yaml", "name: bounds\nexpect:\n  finalAccuracy: { gte: 0.9, lte: 0.5 }\n"),
    );
    expect(bounds.details).toEqual([
      `${path.join(dir, "bounds.yaml")}: expect.finalAccuracy: gte 0.9 is above lte 0.5; no run can meet both`,
    ]);
  });

  it("refuses a field of the wrong type, naming its path", async () => {
    const file = await writeScenario("wrong-type.yaml", "name: wrong\nfit:\n  batchSize: ten\n");
    const err = await loadError(file);
    expect(err.details).toHaveLength(1);
    expect(err.details[0].startsWith(`${file}: fit.batchSize: `)).toBe(true);
    expect(err.details[0]).toMatch(/number/);
  });

  it("refuses a value out of range, naming its path", async () => {
    const file = await writeScenario("range.yaml", "name: range\nfractionFit: 1.5\nrounds: -1\n");
    const err = await loadError(file);
    expect(err.details.some((d) => d.startsWith(`${file}: fractionFit: `))).toBe(true);
    expect(err.details.some((d) => d.startsWith(`${file}: rounds: `))).toBe(true);
  });

  it("refuses minFitClients greater than clients, naming both", async () => {
    const file = await writeScenario("min-fit.yaml", "name: minfit\nclients: 4\nminFitClients: 5\n");
    const err = await loadError(file);
    expect(err.details).toEqual([`${file}: minFitClients: 5 exceeds clients (4)`]);
  });

  it("parseScenario names the source it was given", () => {
    let caught: unknown;
    try {
      parseScenario({ name: "x", fit: { batchSize: 0 } }, "inline.yaml");
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(FedsimError);
    expect((caught as FedsimError).code).toBe(ErrorCode.INVALID_SCENARIO);
    expect((caught as FedsimError).details[0]).toMatch(/^inline\.yaml: fit\.batchSize: /);
  });

  it("fills defaults and resolves paths relative to the scenario file", async () => {
    const file = await writeScenario(
      "minimal.yaml",
      "name: minimal\ndataset:\n  name: idx\n  dataDir: data/digits\n",
    );
    const scenario = await loadScenarioFile(file);
    expect(scenario).toMatchObject({ name: "minimal", clients: 10, rounds: 5, minFitClients: 1 });
    expect(scenario.fit).toEqual({ epochs: 1, batchSize: 10, learningRate: 0.05 });
    expect(scenario.dataset.dataDir).toBe(path.join(dir, "data", "digits"));
  });

  describe("heterogeneity, availability and overSelection", () => {
    /** The problem lines parseScenario reports for a scenario with these fields. */
    function problems(fields: Record<string, unknown>): readonly string[] {
      try {
        parseScenario({ name: "h", clients: 10, ...fields }, "h.yaml");
      } catch (err) {
        expect(err).toBeInstanceOf(FedsimError);
        expect((err as FedsimError).code).toBe(ErrorCode.INVALID_SCENARIO);
        return (err as FedsimError).details;
      }
      throw new Error("expected the scenario to be refused");
    }

    it("parses a full example, filling defaults and turning bare numbers into fixed values", async () => {
      const file = await writeScenario(
        "heterogeneous.yaml",
        [
          "name: heterogeneous",
          "backend: native",
          "clients: 10",
          "heterogeneity:",
          "  speed: { kind: lognormal, median: 1, sigma: 0.5 }",
          "  latencyMs: { kind: uniform, min: 20, max: 200 }",
          "  bandwidthMbps:",
          "    kind: tiers",
          "    tiers: [{ fraction: 0.2, value: 1 }, { fraction: 0.8, value: 50 }]",
          "  uploadMbps: 5",
          "  networkScale: [{ fromRound: 8, scale: 2 }]",
          "availability:",
          "  pattern: { kind: diurnal, periodRounds: 24, minOnline: 0.3 }",
          "  schedule:",
          "    - { clients: [0, 1, 2], offline: { from: 3, to: 5 } }",
          "    - { clients: { fraction: 0.3 }, offline: { from: 5 } }",
          "overSelection: 0.3",
          "",
        ].join("\n"),
      );
      const s = await loadScenarioFile(file);
      expect(s.backend).toBe("native");
      expect(s.heterogeneity?.uploadMbps).toEqual({ kind: "fixed", value: 5 });
      expect(s.availability?.pattern).toEqual({
        kind: "diurnal",
        periodRounds: 24,
        minOnline: 0.3,
        maxOnline: 1,
        phaseSpread: 1,
      });
      expect(s.availability?.schedule?.[1].offline).toEqual({ from: 5 });
      expect(s.overSelection).toBe(0.3);
    });

    it("refuses a value out of range inside a distribution, naming its path", () => {
      const [line, ...rest] = problems({ heterogeneity: { speed: { kind: "uniform", min: 0, max: 1 } } });
      expect(rest).toEqual([]);
      expect(line).toMatch(/^h\.yaml: heterogeneity\.speed\.min: /);
      expect(problems({ heterogeneity: { latencyMs: -5 } })[0]).toMatch(
        /^h\.yaml: heterogeneity\.latencyMs\.value: /,
      );
    });

    it("refuses an unknown distribution kind, naming the field", () => {
      const [line] = problems({ heterogeneity: { bandwidthMbps: { kind: "normal", mean: 5 } } });
      expect(line).toMatch(/^h\.yaml: heterogeneity\.bandwidthMbps\.kind: /);
    });

    it("refuses a uniform distribution whose min exceeds its max", () => {
      expect(problems({ heterogeneity: { speed: { kind: "uniform", min: 2, max: 1 } } })).toEqual([
        "h.yaml: heterogeneity.speed: min 2 exceeds max 1",
      ]);
    });

    it("refuses tiers whose fractions do not sum to 1", () => {
      const tiers = [
        { fraction: 0.5, value: 1 },
        { fraction: 0.4, value: 2 },
      ];
      expect(problems({ heterogeneity: { downloadMbps: { kind: "tiers", tiers } } })).toEqual([
        "h.yaml: heterogeneity.downloadMbps.tiers: fractions sum to 0.9, not 1",
      ]);
    });

    it("refuses a network scale given twice for one round", () => {
      const networkScale = [
        { fromRound: 4, scale: 2 },
        { fromRound: 4, scale: 3 },
      ];
      expect(problems({ heterogeneity: { networkScale } })).toEqual([
        "h.yaml: heterogeneity.networkScale: fromRound 4 listed twice",
      ]);
    });

    it("refuses minOnline above maxOnline", () => {
      const pattern = { kind: "diurnal", periodRounds: 10, minOnline: 0.8, maxOnline: 0.5 };
      expect(problems({ availability: { pattern } })).toEqual([
        "h.yaml: availability.pattern.minOnline: 0.8 exceeds maxOnline (0.5)",
      ]);
    });

    it("refuses scheduled clients outside the scenario, by index and by count", () => {
      const schedule = [
        { clients: [3, 10, 12], offline: { from: 1 } },
        { clients: { count: 11 }, offline: { from: 2 } },
      ];
      expect(problems({ availability: { schedule } })).toEqual([
        "h.yaml: availability.schedule.0.clients: index 10 is outside [0, 10)",
        "h.yaml: availability.schedule.0.clients: index 12 is outside [0, 10)",
        "h.yaml: availability.schedule.1.clients.count: 11 exceeds clients (10)",
      ]);
    });

    it("refuses an offline window that ends before it starts, and rounds below 1", () => {
      expect(
        problems({ availability: { schedule: [{ clients: [1], offline: { from: 5, to: 3 } }] } }),
      ).toEqual(["h.yaml: availability.schedule.0.offline.to: 3 is before from (5)"]);
      const [line] = problems({ availability: { schedule: [{ clients: [1], offline: { from: 0 } }] } });
      expect(line).toMatch(/^h\.yaml: availability\.schedule\.0\.offline\.from: /);
    });

    it("refuses a negative overSelection and an unknown pattern", () => {
      expect(problems({ overSelection: -0.1 })[0]).toMatch(/^h\.yaml: overSelection: /);
      expect(problems({ availability: { pattern: { kind: "weekly" } } })[0]).toMatch(
        /^h\.yaml: availability\.pattern\.kind: /,
      );
    });
  });

  it("parses scenarios/quickstart.yaml", async () => {
    const scenario = await loadScenarioFile(
      path.join(import.meta.dirname, "..", "scenarios", "quickstart.yaml"),
    );
    expect(scenario).toMatchObject({
      name: "quickstart",
      model: "mnist-2nn",
      clients: 10,
      rounds: 10,
      minFitClients: 8,
      dataset: { name: "mnist" },
      partition: { kind: "iid" },
    });
    expect(scenario.minFitClients).toBeLessThanOrEqual(scenario.clients);
  });
});
