import { afterEach, describe, expect, it, vi } from "vitest";
import { privacyCommand, runPrivacyEpsilon, runPrivacyNoise } from "../cli/commands/privacy.js";
import { ErrorCode, FedsimError } from "../common/errors.js";

function captureStdout(): { lines: () => string[] } {
  const chunks: string[] = [];
  vi.spyOn(process.stdout, "write").mockImplementation((chunk: string | Uint8Array) => {
    chunks.push(String(chunk));
    return true;
  });
  return { lines: () => chunks.join("").split("\n").filter(Boolean) };
}

function invalidDetails(attempt: () => unknown): readonly string[] {
  try {
    attempt();
  } catch (err) {
    expect(err).toBeInstanceOf(FedsimError);
    expect((err as FedsimError).code).toBe(ErrorCode.INVALID_CONFIG);
    expect((err as FedsimError).message).toBe("invalid options");
    return (err as FedsimError).details;
  }
  return expect.unreachable("expected invalid options");
}

async function runCli(args: string[]): Promise<void> {
  const command = privacyCommand().exitOverride();
  for (const sub of command.commands) sub.exitOverride();
  await command.parseAsync(args, { from: "user" });
}

afterEach(() => {
  vi.restoreAllMocks();
});

describe("runPrivacyEpsilon", () => {
  it("computes ε from string options as commander passes them", () => {
    const result = runPrivacyEpsilon({
      samplingRate: "0.04",
      noiseMultiplier: "1.5",
      steps: "2250",
      delta: "1e-5",
    });
    expect(Object.keys(result).sort()).toEqual(
      ["conversion", "delta", "epsilon", "noiseMultiplier", "order", "samplingRate", "steps"].sort(),
    );
    expect(Math.abs(result.epsilon - 8.07)).toBeLessThan(0.01);
    expect(result).toMatchObject({
      order: 4.1,
      samplingRate: 0.04,
      noiseMultiplier: 1.5,
      steps: 2250,
      delta: 1e-5,
      conversion: "classic",
    });
    const balle = runPrivacyEpsilon({
      samplingRate: 0.04,
      noiseMultiplier: 1.5,
      steps: 2250,
      delta: 1e-5,
      conversion: "balle",
    });
    expect(Math.abs(balle.epsilon - 7.329)).toBeLessThan(0.001);
  });

  it("lists every bad field on its own line, by flag", () => {
    const details = invalidDetails(() =>
      runPrivacyEpsilon({
        samplingRate: "1.5",
        noiseMultiplier: "0",
        steps: "2.5",
        delta: "2",
        conversion: "rdp",
      }),
    );
    expect(details).toEqual([
      "--sampling-rate: must be in [0, 1]",
      "--noise-multiplier: must be > 0",
      "--steps: must be an integer >= 0",
      "--delta: must be in (0, 1)",
      '--conversion: must be "classic" or "balle"',
    ]);
    expect(invalidDetails(() => runPrivacyEpsilon({ samplingRate: "abc" }))).toEqual([
      "--sampling-rate: must be a number",
      "--noise-multiplier: is required",
      "--steps: is required",
      "--delta: is required",
    ]);
  });
});

describe("runPrivacyNoise", () => {
  it("finds the noise multiplier for a target and reports the ε it gives", () => {
    const result = runPrivacyNoise({
      targetEpsilon: "2.92",
      samplingRate: String(256 / 60000),
      steps: "14063",
      delta: "1e-5",
    });
    expect(Object.keys(result).sort()).toEqual(
      [
        "conversion",
        "delta",
        "epsilon",
        "noiseMultiplier",
        "order",
        "samplingRate",
        "steps",
        "targetEpsilon",
      ].sort(),
    );
    expect(Math.abs(result.noiseMultiplier - 1.12)).toBeLessThan(0.005);
    expect(result.epsilon).toBeLessThanOrEqual(2.92);
    expect(result.targetEpsilon).toBe(2.92);
    expect(result.conversion).toBe("classic");
  });

  it("validates its options by flag", () => {
    expect(
      invalidDetails(() =>
        runPrivacyNoise({ targetEpsilon: "-1", samplingRate: "0.1", steps: "10", delta: "0" }),
      ),
    ).toEqual(["--target-epsilon: must be > 0", "--delta: must be in (0, 1)"]);
  });
});

describe("privacy command", () => {
  it("epsilon --json prints exactly one JSON object", async () => {
    const out = captureStdout();
    await runCli([
      "epsilon",
      "--sampling-rate",
      "0.04",
      "--noise-multiplier",
      "1.5",
      "--steps",
      "2250",
      "--delta",
      "1e-5",
      "--conversion",
      "balle",
      "--json",
    ]);
    const lines = out.lines();
    expect(lines).toHaveLength(1);
    const parsed = JSON.parse(lines[0]);
    expect(Math.abs(parsed.epsilon - 7.329)).toBeLessThan(0.001);
    expect(parsed.conversion).toBe("balle");
    expect(parsed.order).toBe(3.9);
  });

  it("noise prints a human line by default", async () => {
    const out = captureStdout();
    await runCli([
      "noise",
      "--target-epsilon",
      "8",
      "--sampling-rate",
      "0.04",
      "--steps",
      "2250",
      "--delta",
      "1e-5",
    ]);
    const lines = out.lines();
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^noise multiplier 1\.\d{4} gives ε = \d\.\d{4} ≤ 8/);
  });

  it("throws invalid options instead of exiting", async () => {
    captureStdout();
    await expect(runCli(["epsilon", "--sampling-rate", "7"])).rejects.toMatchObject({
      code: ErrorCode.INVALID_CONFIG,
      details: expect.arrayContaining(["--sampling-rate: must be in [0, 1]"]),
    });
  });
});
