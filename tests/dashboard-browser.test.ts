import { mkdirSync } from "node:fs";
import path from "node:path";
import type { Page } from "playwright-core";
import { afterEach, describe, expect, it } from "vitest";
import { ErrorCode } from "../common/errors.js";
import { PrivacyPlugin } from "../server/plugins/privacy.js";
import type { RoundRecord } from "../server/round-record.js";
import {
  ARTIFACTS_DIR,
  type Browser,
  browserRequired,
  CHROMIUM_PATH,
  chromiumAvailable,
  launchChromium,
} from "./helpers/browser.js";
import { answerWithNaN } from "./helpers/observe.js";
import { type RogueFederation, startRogueFederation } from "./helpers/rogue.js";

/** "Within a few seconds of the round ending": how long the page may take to show a round. */
const FEW_SECONDS_MS = 10_000;
/** Page load and the first snapshot on a loaded machine. */
const PAGE_LOAD_MS = 60_000;
const ROUNDS = 3;
const TARGET_EPSILON = 1000;

describe("the live dashboard in a real browser", () => {
  it("has Chromium where it is required (CI, FEDSIM_REQUIRE_BROWSER=1)", () => {
    if (browserRequired && !chromiumAvailable) {
      throw new Error(`Chromium is required here but ${CHROMIUM_PATH} is missing (apt-get install chromium)`);
    }
    expect(chromiumAvailable || !browserRequired).toBe(true);
  });

  let fed: RogueFederation | undefined;
  let browser: Browser | undefined;
  afterEach(async () => {
    await fed?.close();
    fed = undefined;
    await browser?.close();
    browser = undefined;
  });

  it.runIf(chromiumAvailable)(
    "shows each round's accuracy as it ends, ε against its target, and a failed client with its code",
    async () => {
      browser = await launchChromium();
      const page = await browser.context.newPage();
      const pageErrors: string[] = [];
      page.on("pageerror", (err) => pageErrors.push(err.message));
      const requested: string[] = [];
      page.on("request", (req) => requested.push(req.url()));

      const shown: number[] = [];
      let rogueId = "";
      // Runs inside the coordinator's onRound, so the next round cannot start (and the page
      // cannot move on) before the page has shown this one.
      const roundShown = async (record: RoundRecord) => {
        await expectRoundOnPage(page, record, rogueId);
        shown.push(record.round);
      };
      fed = await startRogueFederation({
        coordinator: {
          rounds: ROUNDS,
          plugin: ({ log }) =>
            new PrivacyPlugin({
              envelope: false,
              dp: {
                mode: "central",
                noiseMultiplier: 0.5,
                clipNorm: 1,
                delta: 1e-5,
                conversion: "classic",
                targetEpsilon: TARGET_EPSILON,
              },
              expectedClientsPerRound: 3,
              log,
            }),
          dashboard: {
            config: { model: "tiny-mlp", strategy: "fedavg", privacy: "central DP, z=0.5, S=1" },
            targetEpsilon: TARGET_EPSILON,
          },
          onRound: roundShown,
        },
      });
      const url = fed.coordinator.dashboardUrl;
      if (!url) throw new Error("the dashboard is not on");
      await page.goto(url, { timeout: PAGE_LOAD_MS });
      await page.locator('#connection[data-state="live"]').waitFor({ timeout: PAGE_LOAD_MS });
      await page.locator("#total-rounds", { hasText: String(ROUNDS) }).waitFor({ timeout: PAGE_LOAD_MS });
      await expect(page.locator("#config").textContent()).resolves.toContain("central DP, z=0.5, S=1");

      const rogue = await fed.admitRogue();
      rogueId = rogue.clientId;
      const run = fed.coordinator.run();
      await answerWithNaN(rogue, ROUNDS);
      const result = await run;

      expect(shown).toEqual([1, 2, 3]);
      // Under DP an update may not report metrics or an example count; the rogue's does.
      for (const r of result.rounds) {
        expect(r.failureDetails).toEqual([
          { clientId: rogueId, reason: "rejected", code: ErrorCode.PRIVACY_VIOLATION },
        ]);
      }
      await page.locator('#failures tr[data-kind="rejected"] .count', { hasText: String(ROUNDS) }).waitFor();
      await expect(page.locator("#failure-codes").textContent()).resolves.toBe(
        `codes: ${ErrorCode.PRIVACY_VIOLATION} ×${ROUNDS}`,
      );
      await page.locator("#phase", { hasText: "DONE" }).waitFor({ timeout: FEW_SECONDS_MS });
      await expect(page.locator("#accuracy-chart canvas").count()).resolves.toBeGreaterThan(0);
      expect(pageErrors).toEqual([]);
      // Everything the page loaded came from the coordinator itself: no CDN.
      const origin = new URL(fed.coordinator.url).origin;
      expect(requested.length).toBeGreaterThan(3);
      expect(requested.filter((u) => !u.startsWith(origin))).toEqual([]);

      mkdirSync(ARTIFACTS_DIR, { recursive: true });
      await page.screenshot({ path: path.join(ARTIFACTS_DIR, "dashboard.png"), fullPage: true });
    },
  );
});

/** Waits (bounded by FEW_SECONDS_MS) until the page shows the round's accuracy, ε and the failed client. */
async function expectRoundOnPage(page: Page, record: RoundRecord, rogueId: string): Promise<void> {
  const row = page.locator(`#rounds tr[data-round="${record.round}"]`);
  await row
    .locator(".accuracy", { hasText: record.accuracy.toFixed(4) })
    .waitFor({ timeout: FEW_SECONDS_MS });
  if (record.epsilon === undefined) throw new Error(`round ${record.round} has no ε`);
  await row.locator(".epsilon", { hasText: record.epsilon.toFixed(3) }).waitFor({ timeout: FEW_SECONDS_MS });
  await page
    .locator("#epsilon", { hasText: `ε ${record.epsilon.toFixed(3)} spent of ${TARGET_EPSILON} target` })
    .waitFor({ timeout: FEW_SECONDS_MS });
  const failed = page.locator(`#clients tr[data-client="${rogueId}"][data-state="failed"]`);
  await failed
    .locator(".code", { hasText: ErrorCode.PRIVACY_VIOLATION })
    .waitFor({ timeout: FEW_SECONDS_MS });
}
