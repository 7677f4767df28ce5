import { mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { flagLayer, parseStrategyOption } from "../cli/coordinator-flags.js";
import { ErrorCode as Codes, FedsimError } from "../common/errors.js";
import { isAsyncStrategy } from "../common/strategy/async-strategy.js";
import { mergeLayers, readConfigFile, resolveFederation } from "../scenarios/coordinator-config.js";
import { clientsPerRound } from "../scenarios/federation.js";
import { createStrategy } from "../scenarios/strategy-factory.js";

/** `fedsim coordinator --config FILE` and its options: which layer wins, and what is refused. */

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), "fedsim-coordinator-config-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function configFile(name: string, text: string): Promise<string> {
  const file = path.join(dir, name);
  await writeFile(file, text);
  return file;
}

/** The FedsimError `fn` throws (or rejects with), after checking its code. */
async function expectFedsimError(fn: () => unknown, code: string): Promise<FedsimError> {
  try {
    await fn();
  } catch (err) {
    expect(err).toBeInstanceOf(FedsimError);
    expect((err as FedsimError).code).toBe(code);
    return err as FedsimError;
  }
  throw new Error(`expected a FedsimError ${code}`);
}

const given = (values: Record<string, unknown>) => (flag: string) => flag in values;

describe("coordinator config", () => {
  it("takes a scenario file's federation sections, names the simulation sections it skips, and resolves paths from the file", async () => {
    const file = await configFile(
      "fed.yaml",
      [
        "name: trial",
        "clients: 50",
        "partition: { kind: dirichlet, alpha: 0.3 }",
        "rounds: 7",
        "initModel: models/start.json",
        "strategy: { name: fedavgm, momentum: 0.8 }",
        "fit: { epochs: 2, learningRateSchedule: { kind: exponential, decay: 0.9 } }",
        "evaluation: { everyRounds: 2 }",
      ].join("\n"),
    );
    const config = await readConfigFile(file);
    expect(config.ignored).toEqual(["clients", "partition"]);
    const scenario = resolveFederation(config, {}, 4);
    expect(scenario).toMatchObject({
      name: "trial",
      rounds: 7,
      clients: 4,
      strategy: { name: "fedavgm", momentum: 0.8 },
      fit: { epochs: 2, batchSize: 10, learningRateSchedule: { kind: "exponential", decay: 0.9 } },
      evaluation: { everyRounds: 2 },
      initModel: path.join(dir, "models", "start.json"),
    });
  });

  it("options typed on the command line override the file, field by field", async () => {
    const file = await readConfigFile(
      await configFile(
        "base.yaml",
        "rounds: 7\nstrategy: { name: fedavgm, momentum: 0.8, serverLearningRate: 0.5 }\n",
      ),
    );
    const values = { rounds: 3, clientsPerRound: 2 };
    const flags = flagLayer(values, given(values), ["momentum=0.5"]);
    const scenario = resolveFederation(file, flags, 4);
    expect(scenario.rounds).toBe(3);
    expect(scenario.clientsPerRound).toBe(2);
    // The option replaced momentum and left the file's serverLearningRate alone.
    expect(scenario.strategy).toEqual({ name: "fedavgm", momentum: 0.5, serverLearningRate: 0.5 });
  });

  it("an option's default never overrides the file: only options given count", () => {
    const values = { rounds: 5, epochs: 1, strategy: "fedavg" };
    expect(flagLayer(values, () => false)).toEqual({});
    expect(flagLayer(values, (flag) => flag === "epochs")).toEqual({ fit: { epochs: 1 } });
  });

  it("the asynchronous flags and --strategy-option fill the same strategy section", () => {
    const values = { strategy: "fedbuff", concurrency: 4, staleness: "hinge", stalenessB: 2 };
    const layer = flagLayer(values, given(values), ["bufferSize=2", "staleness.a=0.3"]);
    const scenario = resolveFederation(undefined, layer, 6);
    expect(scenario.strategy).toEqual({
      name: "fedbuff",
      concurrency: 4,
      bufferSize: 2,
      staleness: { kind: "hinge", a: 0.3, b: 2 },
    });
    const strategy = createStrategy(scenario);
    expect(isAsyncStrategy(strategy) && strategy.concurrency).toBe(4);
  });

  it("the async concurrency and the DP sample size default from the clients a round waits for", () => {
    const scenario = resolveFederation(undefined, { strategy: { name: "fedasync" } }, 5);
    expect(clientsPerRound(scenario, createStrategy(scenario))).toBe(5);
  });

  it("a strategy option out of range or unknown is refused naming the field; a malformed one naming the option", async () => {
    const bad = flagLayer({}, () => false, ["momentum=2"]);
    const err = await expectFedsimError(() => resolveFederation(undefined, bad, 2), Codes.INVALID_SCENARIO);
    expect(err.details.join("\n")).toMatch(/options: strategy\.momentum/);
    const unknown = flagLayer({}, () => false, ["momentom=0.9"]);
    const typo = await expectFedsimError(
      () => resolveFederation(undefined, unknown, 2),
      Codes.INVALID_SCENARIO,
    );
    expect(typo.details.join("\n")).toMatch(/momentom/);
    const malformed = await expectFedsimError(() => parseStrategyOption("momentum"), Codes.INVALID_CONFIG);
    expect(malformed.details[0]).toMatch(/--strategy-option: "momentum" is not key=value/);
  });

  it("a bad value in the file is reported against the file", async () => {
    const file = await readConfigFile(await configFile("bad.yaml", "rounds: -1\nfractionFit: 2\n"));
    const err = await expectFedsimError(() => resolveFederation(file, {}, 2), Codes.INVALID_SCENARIO);
    expect(err.details).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/bad\.yaml: rounds/),
        expect.stringMatching(/bad\.yaml: fractionFit/),
      ]),
    );
  });

  it("the scenario rules that span fields still apply: DP with an asynchronous strategy, DP with federated evaluation", async () => {
    const dp = { privacy: { dp: { noiseMultiplier: 1, clipNorm: 1 } } };
    const asyncDp = resolveFederation(undefined, { ...dp, strategy: { name: "fedbuff" } }, 3);
    await expectFedsimError(() => createStrategy(asyncDp), Codes.INCOMPATIBLE_OPTIONS);
    await expectFedsimError(
      () => resolveFederation(undefined, { ...dp, evaluation: { federated: { fraction: 0.5 } } }, 3),
      Codes.INVALID_SCENARIO,
    );
  });

  it("mergeLayers replaces objects whose kind decides their fields", () => {
    const merged = mergeLayers(
      { strategy: { name: "fedbuff", staleness: { kind: "hinge", a: 1, b: 3 } } },
      { strategy: { staleness: { kind: "constant" } } },
    );
    expect(merged).toEqual({ strategy: { name: "fedbuff", staleness: { kind: "constant" } } });
  });

  it("a file that is not a mapping, or not YAML, is refused naming the file", async () => {
    const list = await configFile("list.yaml", "- rounds: 3\n");
    const err = await expectFedsimError(() => readConfigFile(list), Codes.INVALID_CONFIG);
    expect(err.message).toContain("list.yaml");
    const broken = await configFile("broken.json", "{ rounds: ");
    await expectFedsimError(() => readConfigFile(broken), Codes.INVALID_CONFIG);
  });
});
