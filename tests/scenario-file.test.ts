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
    expect(nested?.startsWith(`${file}: fit: `)).toBe(true);
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
