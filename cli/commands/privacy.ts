/**
 * `fedsim privacy epsilon|noise`: the RDP accountant from the command line, to plan a DP run
 * before starting it. The logic lives in runPrivacyEpsilon / runPrivacyNoise (what tests call);
 * the command actions only print.
 */
import { Command } from "commander";
import { z } from "zod";
import { computeEpsilon, noiseForTargetEpsilon } from "../../common/dp/accountant.js";
import type { Conversion } from "../../common/dp/rdp.js";
import { ErrorCode, FedsimError } from "../../common/errors.js";

/** Commander hands options over as strings; numbers passed by tests go through untouched. */
function numberOption(rule: string, check: (value: number) => boolean) {
  return z.preprocess(
    (value) => (typeof value === "string" && value.trim() !== "" ? Number(value) : value),
    z
      .number({ error: (issue) => (issue.input === undefined ? "is required" : "must be a number") })
      .refine(check, rule),
  );
}

const samplingRate = numberOption("must be in [0, 1]", (v) => v >= 0 && v <= 1);
const steps = numberOption("must be an integer >= 0", (v) => Number.isSafeInteger(v) && v >= 0);
const delta = numberOption("must be in (0, 1)", (v) => v > 0 && v < 1);
const positive = numberOption("must be > 0", (v) => v > 0);
const conversion = z.enum(["classic", "balle"], { error: 'must be "classic" or "balle"' }).default("classic");
const json = z.boolean().default(false);

const epsilonOptionsSchema = z.object({
  samplingRate,
  noiseMultiplier: positive,
  steps,
  delta,
  conversion,
  json,
});

const noiseOptionsSchema = z.object({
  targetEpsilon: positive,
  samplingRate,
  steps,
  delta,
  conversion,
  tolerance: positive.optional(),
  json,
});

/** camelCase option key → the flag the user typed. */
function flagOf(key: string): string {
  return `--${key.replace(/[A-Z]/g, (letter) => `-${letter.toLowerCase()}`)}`;
}

function parseOptions<T extends z.ZodType>(schema: T, options: unknown): z.output<T> {
  const result = schema.safeParse(options ?? {});
  if (result.success) return result.data;
  const details = result.error.issues.map(
    (issue) => `${flagOf(String(issue.path[0] ?? "options"))}: ${issue.message}`,
  );
  throw new FedsimError(ErrorCode.INVALID_CONFIG, "invalid options", details);
}

export interface PrivacyEpsilonResult {
  epsilon: number;
  order: number;
  samplingRate: number;
  noiseMultiplier: number;
  steps: number;
  delta: number;
  conversion: Conversion;
}

export interface PrivacyNoiseResult {
  noiseMultiplier: number;
  epsilon: number;
  order: number;
  targetEpsilon: number;
  samplingRate: number;
  steps: number;
  delta: number;
  conversion: Conversion;
}

/** ε after `steps` rounds at sampling rate q and noise multiplier z. */
export function runPrivacyEpsilon(options: unknown): PrivacyEpsilonResult {
  const opts = parseOptions(epsilonOptionsSchema, options);
  const { epsilon, order } = computeEpsilon(opts);
  return {
    epsilon,
    order,
    samplingRate: opts.samplingRate,
    noiseMultiplier: opts.noiseMultiplier,
    steps: opts.steps,
    delta: opts.delta,
    conversion: opts.conversion,
  };
}

/** Smallest noise multiplier whose ε stays within the target, and the ε it actually gives. */
export function runPrivacyNoise(options: unknown): PrivacyNoiseResult {
  const opts = parseOptions(noiseOptionsSchema, options);
  const noiseMultiplier = noiseForTargetEpsilon(opts);
  const { epsilon, order } = computeEpsilon({ ...opts, noiseMultiplier });
  return {
    noiseMultiplier,
    epsilon,
    order,
    targetEpsilon: opts.targetEpsilon,
    samplingRate: opts.samplingRate,
    steps: opts.steps,
    delta: opts.delta,
    conversion: opts.conversion,
  };
}

function describeSetting(result: {
  samplingRate: number;
  steps: number;
  delta: number;
  conversion: Conversion;
}) {
  return `sampling rate ${result.samplingRate}, ${result.steps} steps, δ = ${result.delta}, ${result.conversion} conversion`;
}

function print(line: string): void {
  process.stdout.write(`${line}\n`);
}

export function privacyCommand(): Command {
  const privacy = new Command("privacy").description(
    "RDP accountant for the sampled Gaussian mechanism (one step per round, q = clients sampled / total)",
  );

  privacy
    .command("epsilon")
    .description("ε spent after T steps at sampling rate q and noise multiplier z")
    .option("--sampling-rate <q>", "probability that a client takes part in a round, in [0, 1]")
    .option("--noise-multiplier <z>", "noise std divided by the clip norm, > 0")
    .option("--steps <T>", "number of rounds")
    .option("--delta <d>", "target δ, in (0, 1)")
    .option("--conversion <rule>", "RDP to (ε, δ): classic (Mironov) or balle (Balle et al. 2020, as Opacus)")
    .option("--json", "print one JSON object")
    .action((options: unknown) => {
      const result = runPrivacyEpsilon(options);
      if ((options as { json?: boolean }).json === true) {
        print(JSON.stringify(result));
        return;
      }
      print(
        `ε = ${result.epsilon.toFixed(4)} (order α = ${result.order}) for noise multiplier ${result.noiseMultiplier}, ` +
          describeSetting(result),
      );
    });

  privacy
    .command("noise")
    .description("smallest noise multiplier that keeps ε within a target after T steps")
    .option("--target-epsilon <e>", "privacy budget ε, > 0")
    .option("--sampling-rate <q>", "probability that a client takes part in a round, in [0, 1]")
    .option("--steps <T>", "number of rounds")
    .option("--delta <d>", "target δ, in (0, 1)")
    .option("--conversion <rule>", "RDP to (ε, δ): classic (Mironov) or balle (Balle et al. 2020, as Opacus)")
    .option("--tolerance <t>", "absolute tolerance on the noise multiplier (default 0.001)")
    .option("--json", "print one JSON object")
    .action((options: unknown) => {
      const result = runPrivacyNoise(options);
      if ((options as { json?: boolean }).json === true) {
        print(JSON.stringify(result));
        return;
      }
      print(
        `noise multiplier ${result.noiseMultiplier.toFixed(4)} gives ε = ${result.epsilon.toFixed(4)} ` +
          `≤ ${result.targetEpsilon} (order α = ${result.order}) for ${describeSetting(result)}`,
      );
    });

  return privacy;
}
