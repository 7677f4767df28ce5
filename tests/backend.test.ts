import * as tf from "@tensorflow/tfjs";
import { afterAll, describe, expect, it } from "vitest";
import { ErrorCode, FedsimError } from "../common/errors.js";
import {
  type BackendPreference,
  findCudaLibraries,
  initBackend,
  probeBackends,
} from "../common/tf/backend.js";
import { nativeStatus } from "../common/tf/native.js";

async function rejection(promise: Promise<unknown>): Promise<FedsimError> {
  try {
    await promise;
  } catch (err) {
    expect(err).toBeInstanceOf(FedsimError);
    return err as FedsimError;
  }
  throw new Error("expected a rejection");
}

afterAll(async () => {
  await initBackend("wasm");
});

describe("initBackend", () => {
  it("auto picks native when its addon is built (else wasm), says why the others were skipped, and logs one line", async () => {
    // This machine has no GPU: webgpu is either not installed or finds no GPU adapter.
    const native = nativeStatus().available;
    const lines: string[] = [];
    const info = await initBackend("auto", (line) => lines.push(line));
    expect(info.name).toBe(native ? "native" : "wasm");
    expect(info.preference).toBe("auto");
    expect(tf.getBackend()).toBe(info.name);
    expect(info.skipped.map((s) => s.backend)).toEqual(
      native ? ["tfjs-node-gpu", "tfjs-node", "webgpu"] : ["tfjs-node-gpu", "tfjs-node", "webgpu", "native"],
    );
    for (const skipped of info.skipped.slice(0, 2)) {
      expect(skipped.reason).toMatch(/^not installed \(.*libtensorflow/);
    }
    expect(info.skipped[2].reason).toMatch(/^(no GPU adapter|not installed) \(/);
    expect(lines).toEqual([
      native
        ? expect.stringMatching(
            /^backend: native \(auto; skipped tfjs-node-gpu: not installed, tfjs-node: not installed, webgpu: (no GPU adapter|not installed)\)$/,
          )
        : expect.stringMatching(
            /^backend: wasm \(auto; skipped tfjs-node-gpu: not installed, tfjs-node: not installed, webgpu: (no GPU adapter|not installed), native: (not built|disabled)/,
          ),
    ]);
  });

  it("wasm registers fedsim's training kernels", async () => {
    const info = await initBackend("wasm");
    expect(info.name).toBe("wasm");
    expect(info.kernels).toContain("wasm:Conv2DBackpropFilter(fedsim)");
    expect(info.kernels).toContain("wasm:BatchMatMul(fedsim)");
  });

  it("returns the cached info for a repeated preference without logging again", async () => {
    const first = await initBackend("auto");
    const lines: string[] = [];
    expect(await initBackend("auto", (line) => lines.push(line))).toBe(first);
    expect(lines).toEqual([]);
  });

  it.each([
    ["gpu", "@tensorflow/tfjs-node-gpu"],
    ["node", "@tensorflow/tfjs-node"],
  ] as const)(
    "a forced %s preference that cannot load throws BACKEND_UNAVAILABLE naming %s",
    async (preference, pkg) => {
      await initBackend("wasm");
      const err = await rejection(initBackend(preference));
      expect(err.code).toBe(ErrorCode.BACKEND_UNAVAILABLE);
      expect(err.message).toContain(pkg);
      expect(err.message).toContain("not installed");
      expect(err.message).toContain("To fix:");
      // The failed attempt leaves the working backend in place.
      expect(tf.getBackend()).toBe("wasm");
    },
  );

  it("cpu works when forced, and a different forced preference switches back", async () => {
    const lines: string[] = [];
    const cpu = await initBackend("cpu", (line) => lines.push(line));
    expect(cpu).toMatchObject({ name: "cpu", preference: "cpu", skipped: [], kernels: [] });
    expect(tf.getBackend()).toBe("cpu");
    expect(lines).toEqual(["backend: cpu (forced)"]);
    expect(tf.tidy(() => tf.add(tf.scalar(2), tf.scalar(3)).dataSync()[0])).toBe(5);

    const wasm = await initBackend("wasm");
    expect(wasm.name).toBe("wasm");
    expect(tf.getBackend()).toBe("wasm");
  });

  it("rejects an unknown preference", async () => {
    const err = await rejection(initBackend("tpu" as BackendPreference));
    expect(err.code).toBe(ErrorCode.INVALID_CONFIG);
    expect(err.message).toContain("tpu");
  });
});

describe("probeBackends", () => {
  it("lists the six backends in auto order without switching the active one", async () => {
    await initBackend("cpu");
    const probes = await probeBackends();
    expect(tf.getBackend()).toBe("cpu");
    expect(probes.map((p) => p.backend)).toEqual([
      "tfjs-node-gpu",
      "tfjs-node",
      "webgpu",
      "native",
      "wasm",
      "cpu",
    ]);
    const [gpu, node, , native, wasm, cpu] = probes.map((p) => p.available);
    expect([gpu, node, native, wasm, cpu]).toEqual([false, false, nativeStatus().available, true, true]);
    expect(probes[0].reason).toMatch(/not installed.*CUDA libraries:/);
    expect(probes[1].reason).toContain("not installed");
    for (const probe of probes) expect(probe.reason.length).toBeGreaterThan(0);
  });
});

describe("findCudaLibraries", () => {
  it("returns only CUDA runtime and cuDNN shared libraries", () => {
    for (const lib of findCudaLibraries()) expect(lib).toMatch(/\/lib(cudart|cudnn)\.so/);
  });

  it("searches LD_LIBRARY_PATH", async () => {
    const { mkdtempSync, writeFileSync, rmSync } = await import("node:fs");
    const { tmpdir } = await import("node:os");
    const path = await import("node:path");
    const dir = mkdtempSync(path.join(tmpdir(), "fedsim-cuda-"));
    const saved = process.env["LD_LIBRARY_PATH"];
    try {
      writeFileSync(path.join(dir, "libcudart.so.12"), "");
      writeFileSync(path.join(dir, "libcudnn.so.9"), "");
      writeFileSync(path.join(dir, "libcublas.so.12"), "");
      process.env["LD_LIBRARY_PATH"] = `${dir}:/nonexistent-fedsim-dir`;
      const found = findCudaLibraries().filter((lib) => lib.startsWith(dir));
      expect(found).toEqual([path.join(dir, "libcudart.so.12"), path.join(dir, "libcudnn.so.9")]);
    } finally {
      if (saved === undefined) delete process.env["LD_LIBRARY_PATH"];
      else process.env["LD_LIBRARY_PATH"] = saved;
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
