/**
 * The webgpu tests run only where Dawn finds an adapter (describe.runIf), so each webgpu test file has
 * one test that fails instead when the backend must be there: in CI (.ci/run installs Mesa's software
 * adapter), or with FEDSIM_REQUIRE_WEBGPU=1. That way they cannot pass vacuously where it matters.
 */
import { expect } from "vitest";
import { probeWebGpu } from "../../common/tf/webgpu.js";

export const webgpuRequired = process.env["CI"] !== undefined || process.env["FEDSIM_REQUIRE_WEBGPU"] === "1";

/** Whether `--backend webgpu` loads here (any adapter, software included), and why not. */
export async function webgpuStatus(): Promise<{ available: boolean; reason: string }> {
  return probeWebGpu();
}

/** Fails when the webgpu backend is required here but unavailable. */
export function expectWebGpuWhenRequired(status: { available: boolean; reason: string }): void {
  if (webgpuRequired && !status.available) {
    throw new Error(`the webgpu backend is required here but unavailable: ${status.reason}`);
  }
  expect(status.available || status.reason.length > 0).toBe(true);
}
