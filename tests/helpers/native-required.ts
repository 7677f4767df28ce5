/**
 * The tests that need the native addon run only where it loads (describe.runIf), so each such file has
 * one test that fails instead when the addon must be there: in CI, or with FEDSIM_REQUIRE_NATIVE=1.
 * That way they cannot pass vacuously where it matters.
 */
import { expect } from "vitest";

export const nativeRequired = process.env["CI"] !== undefined || process.env["FEDSIM_REQUIRE_NATIVE"] === "1";

/** Fails when the addon (or the part of it a file tests) is required here but unavailable. */
export function expectNativeWhenRequired(available: boolean, reason: string): void {
  if (nativeRequired && !available) {
    throw new Error(`the native addon is required here but unavailable: ${reason}`);
  }
  expect(available || reason.length > 0).toBe(true);
}
