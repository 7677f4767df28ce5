import { createServer } from "node:net";
import { describe, expect, it } from "vitest";
import { ErrorCode, FedsimError } from "../common/errors.js";
import type { CoordinatorOptions } from "../server/coordinator.js";
import { PrivacyPlugin } from "../server/plugins/privacy.js";
import { smallMnist, startTestCoordinator } from "./helpers/federation.js";

/** Resolves once a fresh server could bind `port` (and has let it go), or rejects with the bind error. */
function bindOnce(port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once("error", reject);
    probe.listen(port, "127.0.0.1", () => probe.close(() => resolve()));
  });
}

/**
 * A coordinator whose setup fails after it started listening (a privacy plugin refusing its
 * options, a loop refusing its settings) must release what it opened: a caller that only sees
 * the rejection has no handle to close.
 */
describe("startCoordinator when setup fails after listening", () => {
  const secagg = { graph: "complete" as const, clipRange: 1, maxWeight: 1, stageTimeoutMs: 1000, seed: 1 };
  const failures: [string, Partial<CoordinatorOptions>, string][] = [
    [
      "a privacy plugin whose constructor refuses its options",
      {
        plugin: ({ log }) => new PrivacyPlugin({ envelope: true, secagg, expectedClientsPerRound: 2, log }),
      },
      ErrorCode.INCOMPATIBLE_OPTIONS,
    ],
    [
      "a round loop that refuses its settings",
      { roundControl: { evaluateEvery: 0 } },
      ErrorCode.INVALID_CONFIG,
    ],
  ];

  for (const [what, overrides, code] of failures) {
    it(`rejects with ${code} for ${what}, and its port is free again`, async () => {
      const { test } = await smallMnist(1, 10, 20);
      const logs: string[] = [];
      const started = startTestCoordinator(test, overrides, logs);
      await expect(started).rejects.toBeInstanceOf(FedsimError);
      await expect(started).rejects.toMatchObject({ code });
      // It did listen first (the failure comes after), on a port the log names.
      const port = Number(logs.join("\n").match(/listening on http:\/\/127\.0\.0\.1:(\d+)/)?.[1]);
      expect(port).toBeGreaterThan(0);
      await expect(bindOnce(port)).resolves.toBeUndefined();
    });
  }
});
