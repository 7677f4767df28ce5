/**
 * Debian's Chromium driven by playwright-core, which never downloads a browser. Tests that need
 * it run where it is installed, and one test fails instead when it must be there: in CI (which
 * installs the `chromium` package), or with FEDSIM_REQUIRE_BROWSER=1.
 */
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { type BrowserContext, chromium } from "playwright-core";

export const CHROMIUM_PATH = process.env["FEDSIM_CHROMIUM"] ?? "/usr/bin/chromium";
export const chromiumAvailable = existsSync(CHROMIUM_PATH);
export const browserRequired =
  process.env["CI"] !== undefined || process.env["FEDSIM_REQUIRE_BROWSER"] === "1";

/** Flags for a quiet, offline, throwaway headless browser (no sandbox: CI runs as root). */
const ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

export interface Browser {
  context: BrowserContext;
  close(): Promise<void>;
}

/** A fresh Chromium with its own empty profile, removed on close. */
export async function launchChromium(): Promise<Browser> {
  const profile = mkdtempSync(path.join(os.tmpdir(), "fedsim-chromium-"));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM_PATH,
    headless: true,
    args: ARGS,
    viewport: { width: 1280, height: 1400 },
    timeout: 60_000,
  });
  return {
    context,
    async close() {
      await context.close();
      rmSync(profile, { recursive: true, force: true });
    },
  };
}

/** Where browser tests leave screenshots (gitignored; CI keeps the folder as an artifact). */
export const ARTIFACTS_DIR = path.resolve(
  path.dirname(new URL(import.meta.url).pathname),
  "..",
  "..",
  "test-artifacts",
);
