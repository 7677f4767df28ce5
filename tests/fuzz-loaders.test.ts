import { mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { CommanderError } from "commander";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse as parseYaml, stringify as toYaml } from "yaml";
import { clientCommand } from "../cli/commands/client.js";
import { coordinatorCommand } from "../cli/commands/coordinator.js";
import { runPrivacyEpsilon, runPrivacyNoise } from "../cli/commands/privacy.js";
import {
  encodePublicKey,
  generateIdentity,
  loadIdentity,
  parseAllowlist,
  saveIdentity,
} from "../common/crypto/identity.js";
import { ErrorCode, FedsimError } from "../common/errors.js";
import { loadScenarioFile, validateScenario } from "../scenarios/schema.js";
import {
  ERROR_CODES,
  FUZZ_SEED,
  hostileNumber,
  hostileValue,
  mutationsOf,
  primitiveBomb,
} from "./helpers/fuzz.js";

fc.configureGlobal({ seed: FUZZ_SEED });

const SCENARIO_DIR = path.resolve(import.meta.dirname, "../scenarios");
let dir = "";
/** The repository's scenario files that parse today: the valid seeds for mutation. */
const seeds: { file: string; raw: unknown }[] = [];

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), "fedsim-fuzz-loaders-"));
  for (const name of (await readdir(SCENARIO_DIR)).filter((n) => n.endsWith(".yaml")).sort()) {
    const raw: unknown = parseYaml(await readFile(path.join(SCENARIO_DIR, name), "utf8"));
    try {
      validateScenario(raw, name);
      seeds.push({ file: name, raw });
    } catch {
      // Another helper's scenario in progress; it is not a valid seed.
    }
  }
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
  console.log(`fuzz-loaders: seed ${FUZZ_SEED} (FUZZ_SEED=${FUZZ_SEED} reproduces it)`);
});

/** What a detail line says a problem is about: the text between "source: " and the next ": ". */
function subjectOf(line: string, source: string): string {
  const rest = line.slice(source.length + 2);
  const end = rest.indexOf(": ");
  return end < 0 ? rest : rest.slice(0, end);
}

/** True when every segment of `subject` but the last walks through `input` (the field's parent exists). */
function namesAFieldOf(input: unknown, subject: string): boolean {
  if (subject === "(root)") return true;
  let at: unknown = input;
  for (const key of subject.split(".").slice(0, -1)) {
    if (at === null || typeof at !== "object" || !Object.hasOwn(at, key)) return false;
    at = (at as Record<string, unknown>)[key];
  }
  return true;
}

/**
 * The loader either returns or throws INVALID_SCENARIO with at least one detail line, every line
 * naming the source (file), and, for schema problems, a field path.
 */
function expectScenarioRefusal(err: unknown, source: string): FedsimError {
  if (!(err instanceof FedsimError)) throw err;
  expect(err.code).toBe(ErrorCode.INVALID_SCENARIO);
  expect(err.message.startsWith(source)).toBe(true);
  expect(err.details.length).toBeGreaterThan(0);
  for (const line of err.details) {
    expect(line.startsWith(`${source}: `)).toBe(true);
    if (err.message.endsWith("invalid scenario")) expect(line.slice(source.length + 2)).toMatch(/^.+?: \S/s);
  }
  return err;
}

describe("fuzzing the scenario loader", () => {
  it("has valid scenario files to mutate", () => {
    expect(seeds.length).toBeGreaterThan(0);
  });

  it("parseScenario on anything: a scenario, or INVALID_SCENARIO with field-naming details", () => {
    fc.assert(
      fc.property(
        fc.oneof(hostileValue({ hugeString: 2000 }), fc.dictionary(fc.string(), hostileValue())),
        (raw) => {
          try {
            validateScenario(raw);
          } catch (err) {
            expectScenarioRefusal(err, "scenario");
          }
        },
      ),
      { numRuns: 600 },
    );
  });

  it("parseScenario on mutated valid scenarios: every refusal names a field of the input", () => {
    const mutated = fc
      .constantFrom(...seeds)
      .chain((seed) => mutationsOf(seed.raw, { hugeString: 2000 }).map((m) => ({ ...m, file: seed.file })));
    let refused = 0;
    fc.assert(
      fc.property(mutated, ({ value, paths, file }) => {
        try {
          validateScenario(value, file);
        } catch (err) {
          const e = expectScenarioRefusal(err, file);
          const subjects = e.details.map((line) => subjectOf(line, file));
          const mentionsMutation = e.details.some((line) =>
            paths.some((p) => p !== "" && line.includes(p.split(".")[0])),
          );
          expect(mentionsMutation || subjects.some((s) => namesAFieldOf(value, s))).toBe(true);
          refused++;
        }
      }),
      { numRuns: 800 },
    );
    expect(refused).toBeGreaterThan(100);
  });

  it("a field without a primitive value (YAML `name: {length: {toString: 0}}`) is INVALID_SCENARIO, not a TypeError", async () => {
    const file = path.join(dir, "bomb.yaml");
    await writeFile(file, "name:\n  length:\n    toString: 0\n");
    const err = await loadScenarioFile(file).catch((e: unknown) => e);
    expectScenarioRefusal(err, file);
    fc.assert(
      fc.property(
        fc.constantFrom(...seeds),
        fc.constantFrom("name", "model", "trainableLayers"),
        primitiveBomb,
        (seed, key, bomb) => {
          const raw = { ...(seed.raw as object), [key]: bomb };
          expect(() => validateScenario(raw, seed.file)).toThrow(FedsimError);
        },
      ),
      { numRuns: 50 },
    );
  });

  it("loadScenarioFile on random bytes, YAML-ish text and mutated scenarios: only INVALID_SCENARIO", async () => {
    const yamlish = fc.string({
      unit: fc.constantFrom(..."abc:- \n\t[]{}&*!|>'\"#%@`,?0123456789.".split("")),
      maxLength: 200,
    });
    const mutatedText = fc.constantFrom(...seeds).chain((seed) =>
      mutationsOf(seed.raw, { hugeString: 2000 }).map((m) => {
        try {
          return toYaml(m.value) ?? "";
        } catch {
          return "";
        }
      }),
    );
    const content = fc.oneof(
      fc.uint8Array({ maxLength: 300 }),
      yamlish.map((s) => Buffer.from(s)),
      mutatedText.map((s) => Buffer.from(s)),
      fc.jsonValue().map((v) => Buffer.from(JSON.stringify(v))),
    );
    let counter = 0;
    await fc.assert(
      fc.asyncProperty(content, fc.constantFrom(".yaml", ".json", ".yml"), async (bytes, ext) => {
        const file = path.join(dir, `case-${counter++}${ext}`);
        await writeFile(file, bytes);
        try {
          await loadScenarioFile(file);
        } catch (err) {
          expectScenarioRefusal(err, file);
        }
      }),
      { numRuns: 400 },
    );
  });

  it("loadScenarioFile on hostile documents (deep nesting, alias bombs, self-reference, huge): only INVALID_SCENARIO", async () => {
    const docs: [string, string][] = [
      ["deep.yaml", `${"[".repeat(100_000)}${"]".repeat(100_000)}`],
      ["deep.json", `${"[".repeat(100_000)}${"]".repeat(100_000)}`],
      ["deepmap.yaml", `${Array.from({ length: 3000 }, (_, i) => `${" ".repeat(i)}k:`).join("\n")} 1\n`],
      [
        "aliases.yaml",
        `a: &a ["x","x","x","x","x","x","x","x","x"]\n${Array.from(
          { length: 9 },
          (_, i) =>
            `${String.fromCharCode(98 + i)}: &${String.fromCharCode(98 + i)} [${Array(9)
              .fill(`*${String.fromCharCode(97 + i)}`)
              .join(",")}]`,
        ).join("\n")}\nname: *j\n`,
      ],
      ["self.yaml", "name: &n [*n]\n"],
      ["tags.yaml", "name: !!binary aGVsbG8=\nrounds: !!float .nan\nclients: !!int 0x7fffffffffffffffff\n"],
      ["huge.yaml", `name: ${"x".repeat(5_000_000)}\nrounds: -1\n`],
      ["empty.json", ""],
      ["nul.yaml", "\u0000\u0000"],
      ["proto.json", '{"__proto__":{"name":"x"},"constructor":{"prototype":{}}}'],
    ];
    for (const [name, text] of docs) {
      const file = path.join(dir, name);
      await writeFile(file, text);
      const err = await loadScenarioFile(file).catch((e: unknown) => e);
      expectScenarioRefusal(err, file);
    }
    const missing = await loadScenarioFile(path.join(dir, "missing.yaml")).catch((e: unknown) => e);
    expect(missing).toBeInstanceOf(FedsimError);
    expect((missing as FedsimError).code).toBe(ErrorCode.INVALID_SCENARIO);
  });
});

describe("fuzzing the identity and allowlist loaders", () => {
  it("loadIdentity on random and mutated key files: an identity, or INVALID_CONFIG", async () => {
    const genuine = path.join(dir, "genuine.json");
    await saveIdentity(genuine, generateIdentity());
    const valid: unknown = JSON.parse(await readFile(genuine, "utf8"));
    const content = fc.oneof(
      fc.uint8Array({ maxLength: 200 }).map((b) => Buffer.from(b)),
      hostileValue({ hugeString: 2000 }).map((v) => Buffer.from(JSON.stringify(v) ?? "")),
      mutationsOf(valid, { hugeString: 2000 }).map((m) => Buffer.from(JSON.stringify(m.value) ?? "")),
    );
    let counter = 0;
    await fc.assert(
      fc.asyncProperty(content, async (bytes) => {
        const file = path.join(dir, `identity-${counter++}.json`);
        await writeFile(file, bytes, { mode: 0o600 });
        const outcome = await loadIdentity(file).then(
          () => "ok",
          (err: unknown) => err,
        );
        if (outcome === "ok") return;
        expect(outcome).toBeInstanceOf(FedsimError);
        expect((outcome as FedsimError).code).toBe(ErrorCode.INVALID_CONFIG);
      }),
      { numRuns: 200 },
    );
  });

  it("parseAllowlist on random text: a set of canonical keys, or INVALID_CONFIG naming the line", () => {
    const key = encodePublicKey(generateIdentity().publicKey);
    const line = fc.oneof(
      fc.constant(key),
      fc.constant(`${key} label`),
      fc.constant("# c"),
      fc.string({ maxLength: 60 }),
    );
    fc.assert(
      fc.property(fc.array(line, { maxLength: 6 }), (lines) => {
        try {
          const keys = parseAllowlist(lines.join("\n"), "allow.txt");
          for (const k of keys) expect(k).toBe(key);
        } catch (err) {
          expect(err).toBeInstanceOf(FedsimError);
          expect((err as FedsimError).code).toBe(ErrorCode.INVALID_CONFIG);
          expect((err as FedsimError).message).toMatch(/^allow\.txt line \d+: /);
        }
      }),
      { numRuns: 500 },
    );
  });
});

describe("fuzzing CLI option parsing", () => {
  const value = fc.oneof(
    fc.string({ maxLength: 30 }),
    hostileNumber.map(String),
    fc.constantFrom("", "NaN", "-1", "1e309", "0x10", "0", "1", "secagg+", "http://x", "a,b,,c", "--"),
  );

  /** Random argv from the command's own flags; `forced` comes first and makes it invalid on purpose. */
  function argv(flags: string[], forced: string[]): fc.Arbitrary<string[]> {
    const token = fc.oneof(
      { weight: 4, arbitrary: fc.tuple(fc.constantFrom(...flags), value).map(([f, v]) => [`${f}=${v}`]) },
      { weight: 2, arbitrary: fc.tuple(fc.constantFrom(...flags), value).map(([f, v]) => [f, v]) },
      { weight: 1, arbitrary: fc.constantFrom(...flags).map((f) => [f]) },
      { weight: 1, arbitrary: value.map((v) => [v]) },
    );
    return fc.array(token, { maxLength: 8 }).map((tokens) => [...forced, ...tokens.flat()]);
  }

  /** The action must never get past option parsing: a refusal is INVALID_CONFIG naming flags, or commander's own. */
  async function expectOptionRefusal(command: () => ReturnType<typeof coordinatorCommand>, args: string[]) {
    const cmd = command()
      .exitOverride()
      .configureOutput({ writeOut: () => {}, writeErr: () => {} });
    const outcome = await cmd.parseAsync(args, { from: "user" }).then(
      () => "ran",
      (err: unknown) => err,
    );
    if (outcome instanceof CommanderError) return;
    expect(outcome).toBeInstanceOf(FedsimError);
    const err = outcome as FedsimError;
    expect(err.code).toBe(ErrorCode.INVALID_CONFIG);
    expect(err.details.length).toBeGreaterThan(0);
    for (const line of err.details) expect(line).toMatch(/^--[a-z][a-z0-9.-]*: \S/);
  }

  it("coordinator options: garbage values are INVALID_CONFIG with one line per flag", async () => {
    const flags = coordinatorCommand().options.map((o) => o.long ?? "--x");
    // Three admission modes at once is always invalid, so the action never starts a server.
    const forced = ["--insecure-open", "--token=xxxxxxxx", `--allow=${path.join(os.tmpdir(), "none")}`];
    await fc.assert(
      fc.asyncProperty(argv(flags, forced), (args) => expectOptionRefusal(coordinatorCommand, args)),
      { numRuns: 300 },
    );
  });

  it("client options: garbage values are INVALID_CONFIG with one line per flag", async () => {
    const flags = clientCommand().options.map((o) => o.long ?? "--x");
    // --data and --dataset together is always invalid, so the action never connects.
    const forced = ["--server=http://127.0.0.1:9", "--data=/nonexistent", "--dataset=mnist"];
    await fc.assert(
      fc.asyncProperty(argv(flags, forced), (args) => expectOptionRefusal(clientCommand, args)),
      { numRuns: 300 },
    );
  });

  it("privacy: extreme noise multipliers and tolerances finish with a finite ε above the δ floor", () => {
    // Both once looped forever: σ² = Infinity put NaN into the RDP series; a tolerance below one
    // ulp kept the bisection from ever ending.
    for (const noiseMultiplier of [1e160, 1e200, Number.MAX_VALUE]) {
      for (const samplingRate of [0.01, 0.5, 0.9]) {
        const { epsilon } = runPrivacyEpsilon({ samplingRate, noiseMultiplier, steps: 10, delta: 1e-5 });
        expect(epsilon).toBeGreaterThan(0);
        expect(Number.isFinite(epsilon)).toBe(true);
      }
    }
    for (const tolerance of [1e-300, Number.MIN_VALUE]) {
      const result = runPrivacyNoise({
        targetEpsilon: 5,
        samplingRate: 0.01,
        steps: 100,
        delta: 1e-5,
        tolerance,
      });
      expect(result.epsilon).toBeLessThanOrEqual(5);
    }
  });

  it("privacy epsilon/noise options: a result with finite ε, or a typed refusal", () => {
    const options = fc.oneof(
      hostileValue({ hugeString: 1000 }),
      fc.record(
        {
          samplingRate: fc.oneof(hostileNumber, fc.double({ min: 0, max: 1 }), value),
          noiseMultiplier: fc.oneof(hostileNumber, fc.double({ min: 0.3, max: 20 })),
          targetEpsilon: fc.oneof(hostileNumber, fc.double({ min: 0.5, max: 50 })),
          steps: fc.oneof(hostileNumber, fc.integer({ min: 0, max: 10_000 }), value),
          delta: fc.oneof(hostileNumber, fc.double({ min: 1e-9, max: 0.5 })),
          conversion: fc.oneof(fc.constantFrom("classic", "balle"), fc.string()),
          tolerance: fc.oneof(hostileNumber, fc.constantFrom(1e-300, Number.MIN_VALUE, 1e-3)),
          json: fc.oneof(fc.boolean(), value),
        },
        { requiredKeys: [] },
      ),
    );
    fc.assert(
      fc.property(options, (raw) => {
        for (const run of [runPrivacyEpsilon, runPrivacyNoise]) {
          try {
            const result = run(raw);
            expect(Number.isFinite(result.epsilon) || result.epsilon === Number.POSITIVE_INFINITY).toBe(true);
          } catch (err) {
            if (!(err instanceof FedsimError)) throw err;
            expect(ERROR_CODES.has(err.code)).toBe(true);
          }
        }
      }),
      { numRuns: 150 },
    );
  });
});
