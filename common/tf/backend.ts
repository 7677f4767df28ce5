/**
 * Picks the TensorFlow.js backend fedsim trains on: tfjs-node-gpu, tfjs-node, webgpu (Dawn, only on a
 * real GPU; common/tf/webgpu.ts), native (fedsim's optional oneDNN kernels, common/tf/native.ts), wasm,
 * then the pure-JS cpu.
 *
 * The two tfjs-node packages are optional dependencies whose install scripts download libtensorflow; when
 * that fails npm drops them without a word, so "not installed" is the normal case and is reported plainly.
 * They are imported by names held in variables so the build needs neither their types nor their presence.
 */
import { existsSync, readdirSync } from "node:fs";
import path from "node:path";
import * as tf from "@tensorflow/tfjs";
import { ErrorCode, FedsimError } from "../errors.js";
import { BUILD_REMEDY, NATIVE_BACKEND, nativeStatus, registerNativeBackend } from "./native.js";
import { BackendLoadFailure, firstLine, importPackage, resolvePackage } from "./packages.js";
import { registerWasmTrainingKernels } from "./wasm-kernels.js";
import {
  describeAdapter,
  probeWebGpu,
  probeWebGpuAdapter,
  registerWebGpuBackend,
  SOFTWARE_ADAPTER_INSTALL,
  WEBGPU_BACKEND,
  WEBGPU_INSTALL,
  type WebGpuAdapter,
} from "./webgpu.js";

export type BackendPreference = "auto" | "gpu" | "node" | "webgpu" | "native" | "wasm" | "cpu";

export interface SkippedBackend {
  backend: string;
  reason: string;
}

export interface BackendInfo {
  name: "tensorflow-gpu" | "tensorflow" | "webgpu" | "native" | "wasm" | "cpu";
  preference: BackendPreference;
  reason: string;
  /** Backends tried before this one (auto only), with why each was passed over. */
  skipped: SkippedBackend[];
  /** fedsim kernels registered for this backend, e.g. "wasm:Conv2DBackpropFilter(fedsim)". */
  kernels: string[];
  /** The WebGPU adapter the webgpu backend runs on. */
  adapter?: WebGpuAdapter;
}

export interface BackendProbe {
  backend: string;
  available: boolean;
  reason: string;
  /** webgpu only: the adapter a forced "webgpu" would run on (auto takes it only if it is not software). */
  adapter?: WebGpuAdapter;
}

const TFJS_NODE_GPU = "@tensorflow/tfjs-node-gpu";
const TFJS_NODE = "@tensorflow/tfjs-node";
const TFJS_WASM = "@tensorflow/tfjs-backend-wasm";
const WASM_BINARIES = ["tfjs-backend-wasm.wasm", "tfjs-backend-wasm-simd.wasm"];

interface Candidate {
  preference: Exclude<BackendPreference, "auto">;
  /** Short label used in logs and reports. */
  label: string;
  name: BackendInfo["name"];
  /** What the user should do when this backend was requested and is missing. */
  remedy: string;
  /**
   * Loads and switches to the backend; returns the fedsim kernels it registered. `auto` is true when
   * backend "auto" asks, which may be pickier than a forced preference (webgpu wants a real GPU).
   */
  activate(auto: boolean): Promise<string[]>;
}

function notInstalledReason(packageName: string): string {
  if (packageName === TFJS_WASM) return "not installed (reinstall fedsim's dependencies: npm ci)";
  return "not installed (its install script needs to download libtensorflow; npm drops it silently when that fails)";
}

async function switchTo(tfjsBackendName: string): Promise<void> {
  let ok: boolean;
  try {
    ok = await tf.setBackend(tfjsBackendName);
  } catch (err) {
    throw new BackendLoadFailure(`'${tfjsBackendName}' is not registered: ${firstLine(String(err))}`);
  }
  if (!ok)
    throw new BackendLoadFailure(`'${tfjsBackendName}' failed to initialise (see the tfjs warning above)`);
  await tf.ready();
}

async function activateTfjsNode(packageName: string): Promise<string[]> {
  try {
    await importPackage(packageName, notInstalledReason(packageName));
  } catch (err) {
    if (
      packageName === TFJS_NODE_GPU &&
      err instanceof BackendLoadFailure &&
      findCudaLibraries().length === 0
    ) {
      throw new BackendLoadFailure(`${err.message}; no libcudart/libcudnn found`);
    }
    throw err;
  }
  await switchTo("tensorflow");
  return [];
}

function wasmDistDir(): string {
  // The package's main file lives in dist/, next to the .wasm binaries.
  return path.dirname(resolvePackage(TFJS_WASM, notInstalledReason(TFJS_WASM)));
}

async function activateWasm(): Promise<string[]> {
  const wasmModule = (await importPackage(TFJS_WASM, notInstalledReason(TFJS_WASM))) as {
    setWasmPaths(prefix: string): void;
  };
  // Load the binaries from node_modules, never from a CDN.
  wasmModule.setWasmPaths(`${wasmDistDir()}${path.sep}`);
  await switchTo("wasm");
  return registerWasmTrainingKernels().map((kernel) => `wasm:${kernel}(fedsim)`);
}

async function activateNative(): Promise<string[]> {
  const status = nativeStatus();
  if (!status.available) throw new BackendLoadFailure(status.reason);
  const kernels = registerNativeBackend();
  await switchTo(NATIVE_BACKEND);
  return kernels.map((kernel) => `native:${kernel}(fedsim)`);
}

const CANDIDATES: readonly Candidate[] = [
  {
    preference: "gpu",
    label: "tfjs-node-gpu",
    name: "tensorflow-gpu",
    remedy: `install ${TFJS_NODE_GPU} on a machine with CUDA and cuDNN (its install needs network access to fetch libtensorflow), or use backend "auto"`,
    activate: () => activateTfjsNode(TFJS_NODE_GPU),
  },
  {
    preference: "node",
    label: "tfjs-node",
    name: "tensorflow",
    remedy: `install ${TFJS_NODE} (its install needs network access to fetch libtensorflow), or use backend "auto" or "wasm"`,
    activate: () => activateTfjsNode(TFJS_NODE),
  },
  {
    preference: "webgpu",
    label: "webgpu",
    name: "webgpu",
    remedy: `${WEBGPU_INSTALL} (fedsim's optional dependencies), and a GPU driver with Vulkan (Metal on macOS, D3D12 on Windows); without a GPU, Mesa's software adapter (${SOFTWARE_ADAPTER_INSTALL}) is used; or use backend "auto"`,
    activate: async (auto) => {
      await registerWebGpuBackend(!auto);
      await switchTo(WEBGPU_BACKEND);
      return [];
    },
  },
  {
    preference: "native",
    label: "native",
    name: "native",
    remedy: `${BUILD_REMEDY}, or use backend "auto" or "wasm"`,
    activate: activateNative,
  },
  {
    preference: "wasm",
    label: "wasm",
    name: "wasm",
    remedy: `reinstall fedsim's dependencies (npm ci) so ${TFJS_WASM} and its .wasm files are present, or use backend "cpu"`,
    activate: activateWasm,
  },
  {
    preference: "cpu",
    label: "cpu",
    name: "cpu",
    remedy: "the cpu backend ships with @tensorflow/tfjs; reinstall fedsim's dependencies",
    activate: async () => {
      await switchTo("cpu");
      return [];
    },
  },
];

const PACKAGE_OF: Record<string, string> = {
  "tfjs-node-gpu": TFJS_NODE_GPU,
  "tfjs-node": TFJS_NODE,
  webgpu: "webgpu and @tensorflow/tfjs-backend-webgpu with a WebGPU adapter",
  native: "fedsim's native kernels (native/build/fedsim_native.node)",
  wasm: TFJS_WASM,
  cpu: "@tensorflow/tfjs",
};

function tfjsBackendName(name: BackendInfo["name"]): string {
  return name === "tensorflow-gpu" ? "tensorflow" : name;
}

/** One-line reasons stay short in the log; the parenthesised explanation is kept in BackendInfo. */
function shortReason(reason: string): string {
  const cut = reason.indexOf(" (");
  return cut === -1 ? reason : reason.slice(0, cut);
}

function logLine(info: BackendInfo): string {
  const on = info.adapter === undefined ? "" : ` on ${describeAdapter(info.adapter)}`;
  if (info.preference !== "auto") return `backend: ${info.name}${on} (forced)`;
  if (info.skipped.length === 0) return `backend: ${info.name}${on} (auto)`;
  const skipped = info.skipped.map((s) => `${s.backend}: ${shortReason(s.reason)}`).join(", ");
  return `backend: ${info.name}${on} (auto; skipped ${skipped})`;
}

/** The adapter behind the webgpu backend, for BackendInfo. */
async function adapterOf(name: BackendInfo["name"]): Promise<{ adapter?: WebGpuAdapter }> {
  return name === "webgpu" ? { adapter: await probeWebGpuAdapter(true) } : {};
}

async function resolveAuto(): Promise<BackendInfo> {
  const skipped: SkippedBackend[] = [];
  for (const candidate of CANDIDATES) {
    try {
      const kernels = await candidate.activate(true);
      return {
        name: candidate.name,
        preference: "auto",
        reason: `first backend that loaded, in the order ${CANDIDATES.map((c) => c.label).join(", ")}`,
        skipped,
        kernels,
        ...(await adapterOf(candidate.name)),
      };
    } catch (err) {
      if (!(err instanceof BackendLoadFailure)) throw err;
      skipped.push({ backend: candidate.label, reason: err.message });
    }
  }
  throw new FedsimError(
    ErrorCode.BACKEND_UNAVAILABLE,
    "no TensorFlow.js backend could be loaded, not even cpu",
    skipped.map((s) => `${s.backend}: ${s.reason}`),
  );
}

async function resolveForced(preference: Exclude<BackendPreference, "auto">): Promise<BackendInfo> {
  const candidate = CANDIDATES.find((c) => c.preference === preference);
  if (candidate === undefined) {
    throw new FedsimError(
      ErrorCode.INVALID_CONFIG,
      `backend preference must be one of auto, ${CANDIDATES.map((c) => c.preference).join(", ")}; got "${preference}"`,
    );
  }
  const previous = tf.engine().backendName;
  try {
    const kernels = await candidate.activate(false);
    return {
      name: candidate.name,
      preference,
      reason: `requested with backend "${preference}"`,
      skipped: [],
      kernels,
      ...(await adapterOf(candidate.name)),
    };
  } catch (err) {
    if (!(err instanceof BackendLoadFailure)) throw err;
    // tfjs leaves a backend whose initialisation failed selected; go back to the one that worked.
    if (previous && tf.engine().backendName !== previous) await tf.setBackend(previous);
    throw new FedsimError(
      ErrorCode.BACKEND_UNAVAILABLE,
      `backend "${preference}" needs ${PACKAGE_OF[candidate.label]}, which is unavailable: ${err.message}. To fix: ${candidate.remedy}`,
    );
  }
}

let active: BackendInfo | undefined;
/** Backend switches are global to the tfjs engine, so concurrent calls are run one after another. */
let queue: Promise<unknown> = Promise.resolve();

/**
 * Selects and initialises the backend, logging one line such as
 * `backend: wasm (auto; skipped tfjs-node-gpu: not installed, tfjs-node: not installed)`.
 * A repeated call with the same preference returns the cached info without logging; a different
 * preference switches. A forced preference that cannot load throws FedsimError BACKEND_UNAVAILABLE.
 */
export function initBackend(
  preference: BackendPreference = "auto",
  log?: (line: string) => void,
): Promise<BackendInfo> {
  const run = queue.then(async () => {
    // Prod mode skips per-op NaN checks and stops the cpu backend from printing its banner.
    tf.enableProdMode();
    if (
      active !== undefined &&
      active.preference === preference &&
      tf.getBackend() === tfjsBackendName(active.name)
    ) {
      return active;
    }
    const info = preference === "auto" ? await resolveAuto() : await resolveForced(preference);
    active = info;
    log?.(logLine(info));
    return info;
  });
  queue = run.catch(() => undefined);
  return run;
}

function cudaSearchDirs(): string[] {
  const fromEnv = (process.env["LD_LIBRARY_PATH"] ?? "").split(":").filter((dir) => dir !== "");
  let cudaInstalls: string[] = [];
  try {
    cudaInstalls = readdirSync("/usr/local")
      .filter((entry) => entry.startsWith("cuda"))
      .map((entry) => path.join("/usr/local", entry, "lib64"));
  } catch {
    // No /usr/local: nothing to add.
  }
  return [...new Set([...fromEnv, ...cudaInstalls, "/usr/lib/x86_64-linux-gnu"])];
}

/** Full paths of libcudart.so* and libcudnn.so* in the usual places; empty when CUDA is absent. */
export function findCudaLibraries(): string[] {
  const found = new Set<string>();
  for (const dir of cudaSearchDirs()) {
    let entries: string[];
    try {
      entries = readdirSync(dir);
    } catch {
      continue;
    }
    for (const entry of entries) {
      if (/^lib(cudart|cudnn)\.so/.test(entry)) found.add(path.join(dir, entry));
    }
  }
  return [...found].sort();
}

async function probeTfjsNode(label: string, packageName: string): Promise<BackendProbe> {
  try {
    // Importing registers the "tensorflow" backend but leaves the active backend alone.
    await importPackage(packageName, notInstalledReason(packageName));
    return { backend: label, available: true, reason: `${packageName} loads` };
  } catch (err) {
    if (!(err instanceof BackendLoadFailure)) throw err;
    return { backend: label, available: false, reason: err.message };
  }
}

function probeNative(): BackendProbe {
  const status = nativeStatus();
  if (!status.available) return { backend: "native", available: false, reason: status.reason };
  const active = tf.getBackend() === NATIVE_BACKEND ? "active; " : "";
  return { backend: "native", available: true, reason: `${active}${status.reason}, ${status.path}` };
}

function probeWasm(): BackendProbe {
  if (tf.getBackend() === "wasm") return { backend: "wasm", available: true, reason: "active" };
  if ((globalThis as { WebAssembly?: unknown }).WebAssembly === undefined) {
    return { backend: "wasm", available: false, reason: "this JavaScript runtime has no WebAssembly" };
  }
  let dir: string;
  try {
    dir = wasmDistDir();
  } catch (err) {
    return { backend: "wasm", available: false, reason: err instanceof Error ? err.message : String(err) };
  }
  const missing = WASM_BINARIES.filter((file) => !existsSync(path.join(dir, file)));
  if (missing.length > 0) {
    return { backend: "wasm", available: false, reason: `missing ${missing.join(", ")} in ${dir}` };
  }
  return { backend: "wasm", available: true, reason: `${TFJS_WASM} and its .wasm binaries found in ${dir}` };
}

/**
 * Availability of each backend, for `fedsim doctor`, in the auto order. It does not switch the active
 * backend (the tfjs-node packages are imported, which registers but does not activate them; Dawn is
 * asked for an adapter, but no device is created). Available means a forced preference would load.
 */
export async function probeBackends(): Promise<BackendProbe[]> {
  const cuda = findCudaLibraries();
  const gpu = await probeTfjsNode("tfjs-node-gpu", TFJS_NODE_GPU);
  gpu.reason += cuda.length === 0 ? "; CUDA libraries: none found" : `; CUDA libraries: ${cuda.join(", ")}`;
  return [
    gpu,
    await probeTfjsNode("tfjs-node", TFJS_NODE),
    { backend: "webgpu", ...(await probeWebGpu()) },
    probeNative(),
    probeWasm(),
    {
      backend: "cpu",
      available: true,
      reason: "pure JavaScript, always available (far too slow for CNN training)",
    },
  ];
}
