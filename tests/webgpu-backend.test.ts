/**
 * Choosing the webgpu backend: auto takes only a real GPU and says why not; a forced "webgpu" takes a
 * software adapter too; doctor's probe names the adapter. FEDSIM_DAWN_BACKENDS=opengles makes Mesa's
 * software adapter (llvmpipe, the one CI has) the only API tried, so auto meets a software adapter here.
 * The adapter tests need it (describe.runIf); "the webgpu backend is available" fails instead when CI
 * or FEDSIM_REQUIRE_WEBGPU=1 is set.
 */
process.env["FEDSIM_DAWN_BACKENDS"] = "opengles";

import * as tf from "@tensorflow/tfjs";
import { afterAll, describe, expect, it } from "vitest";
import { runDoctor } from "../cli/commands/doctor.js";
import { ErrorCode, FedsimError } from "../common/errors.js";
import { initBackend, probeBackends } from "../common/tf/backend.js";
import { nativeStatus } from "../common/tf/native.js";
import {
  DAWN_BACKENDS_ENV,
  describeAdapter,
  SOFTWARE_ADAPTER_INSTALL,
  softwareAdapterReason,
  WEBGPU_INSTALL,
  type WebGpuAdapter,
} from "../common/tf/webgpu.js";
import { parseScenario } from "../scenarios/schema.js";
import { expectWebGpuWhenRequired, webgpuStatus } from "./helpers/webgpu-required.js";

const status = await webgpuStatus();

afterAll(async () => {
  await initBackend("cpu");
});

it("the webgpu backend is available when CI or FEDSIM_REQUIRE_WEBGPU=1 is set", () => {
  expectWebGpuWhenRequired(status);
});

describe("softwareAdapterReason", () => {
  it.each([
    [{ device: "llvmpipe-llvm-15-0-6-256-bits-", description: "OpenGL ES 3.2 Mesa 22.3.6" }, "llvmpipe"],
    [{ vendor: "mesa", device: "lavapipe" }, "lavapipe"],
    [{ description: "SwiftShader Device (Subzero)" }, "SwiftShader"],
    [{ description: "Microsoft Basic Render Driver" }, "Basic Render Driver"],
    [{ vendor: "nvidia", device: "whatever", isFallbackAdapter: true }, "fallback"],
  ])("names a software rasterizer: %j", (info, fragment) => {
    expect(softwareAdapterReason(info)).toContain(fragment);
  });

  it.each([
    { vendor: "nvidia", architecture: "ampere", description: "NVIDIA: 550.54" },
    { vendor: "amd", architecture: "rdna-3", device: "AMD Radeon RX 7900 XTX (RADV NAVI31)" },
    { vendor: "apple", architecture: "metal-3", isFallbackAdapter: false },
  ])("takes a GPU for a GPU: %j", (info) => {
    expect(softwareAdapterReason(info)).toBeNull();
  });
});

describe("describeAdapter", () => {
  it("names vendor, architecture, device, driver and Dawn backend, and flags software", () => {
    const adapter: WebGpuAdapter = {
      vendor: "nvidia",
      architecture: "ampere",
      device: "",
      description: "NVIDIA: 550.54",
      dawnBackend: "vulkan",
      featureLevel: "core",
      software: null,
      limits: {} as WebGpuAdapter["limits"],
    };
    expect(describeAdapter(adapter)).toBe("nvidia ampere (NVIDIA: 550.54) via Dawn vulkan");
    expect(describeAdapter({ ...adapter, software: "llvmpipe is a software rasterizer" })).toMatch(
      /, software$/,
    );
  });
});

describe("the scenario schema", () => {
  it("accepts backend webgpu", () => {
    expect(parseScenario({ name: "gpu", backend: "webgpu" }).backend).toBe("webgpu");
  });
});

describe("a Dawn backend list that names no real backend", () => {
  it("makes a forced webgpu fail with BACKEND_UNAVAILABLE naming the variable and the install command", async () => {
    await initBackend("cpu");
    const saved = process.env[DAWN_BACKENDS_ENV];
    process.env[DAWN_BACKENDS_ENV] = "opengles,glide";
    try {
      const err = await initBackend("webgpu").then(
        () => null,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(FedsimError);
      expect((err as FedsimError).code).toBe(ErrorCode.BACKEND_UNAVAILABLE);
      expect((err as FedsimError).message).toContain(`${DAWN_BACKENDS_ENV}: unknown Dawn backend "glide"`);
      expect((err as FedsimError).message).toContain(`To fix: ${WEBGPU_INSTALL}`);
      expect(tf.getBackend()).toBe("cpu");
    } finally {
      process.env[DAWN_BACKENDS_ENV] = saved;
    }
  });

  it("makes doctor say what is missing and how to install it", async () => {
    const saved = process.env[DAWN_BACKENDS_ENV];
    process.env[DAWN_BACKENDS_ENV] = "glide";
    try {
      const { webgpu } = await runDoctor();
      expect(webgpu).toMatchObject({ available: false, usedByAuto: false });
      expect(webgpu.reason).toContain("unknown Dawn backend");
      if (process.platform === "linux") {
        expect(webgpu.install).toContainEqual(expect.stringContaining(SOFTWARE_ADAPTER_INSTALL));
        expect(webgpu.install).toContainEqual(expect.stringContaining("Vulkan"));
      }
    } finally {
      process.env[DAWN_BACKENDS_ENV] = saved;
    }
  });
});

describe.runIf(status.available)("a machine whose only adapter is a software rasterizer", () => {
  it("auto passes webgpu over and logs why", async () => {
    const lines: string[] = [];
    const info = await initBackend("auto", (line) => lines.push(line));
    expect(info.name).not.toBe("webgpu");
    const skipped = info.skipped.find((s) => s.backend === "webgpu");
    expect(skipped?.reason).toMatch(/^no GPU adapter \(opengles: only a software adapter, .*llvmpipe/);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain("webgpu: no GPU adapter");
  });

  it("doctor's probe names the adapter and says auto passes it over", async () => {
    const probe = (await probeBackends()).find((p) => p.backend === "webgpu");
    expect(probe?.available).toBe(true);
    expect(probe?.adapter?.dawnBackend).toBe("opengles");
    expect(probe?.adapter?.featureLevel).toBe("compatibility");
    expect(probe?.adapter?.limits.maxStorageBufferBindingSize).toBeGreaterThan(0);
    expect(probe?.reason).toMatch(/via Dawn opengles, software; auto passes it over/);
  });

  it("doctor shows the adapter (vendor, architecture, Dawn backend, limits) and that auto passes it over", async () => {
    const report = await runDoctor();
    expect(report.webgpu.available).toBe(true);
    expect(report.webgpu.usedByAuto).toBe(false);
    expect(report.webgpu.adapter).toMatchObject({
      dawnBackend: "opengles",
      featureLevel: "compatibility",
      vendor: expect.any(String),
      architecture: expect.any(String),
    });
    expect(Object.keys(report.webgpu.adapter?.limits ?? {})).toContain("maxBufferSize");
    // A software adapter does not stop auto before the native kernels.
    expect(report.native.usedByAuto).toBe(nativeStatus().available);
  });

  it("a forced webgpu runs on it, names it in the log line, and computes", async () => {
    const lines: string[] = [];
    const info = await initBackend("webgpu", (line) => lines.push(line));
    expect(info.name).toBe("webgpu");
    expect(tf.getBackend()).toBe("webgpu");
    expect(info.adapter?.software).toMatch(/llvmpipe/);
    expect(lines).toEqual([
      expect.stringMatching(/^backend: webgpu on .*via Dawn opengles, software \(forced\)$/),
    ]);
    const product = tf.matMul(tf.tensor2d([1, 2, 3, 4], [2, 2]), tf.tensor2d([5, 6, 7, 8], [2, 2]));
    expect(Array.from(await product.data())).toEqual([19, 22, 43, 50]);
    product.dispose();
  });

  it("auto still passes it over once the forced backend has registered it", async () => {
    const info = await initBackend("auto");
    expect(info.name).not.toBe("webgpu");
    expect(info.skipped.find((s) => s.backend === "webgpu")?.reason).toMatch(/only a software adapter/);
  });
});
