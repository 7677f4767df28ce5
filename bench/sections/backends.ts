import { type BackendPreference, initBackend, probeBackends } from "../../common/tf/backend.js";
import { describeAdapter } from "../../common/tf/webgpu.js";
import { errorMessage } from "../timing.js";

/**
 * The TensorFlow.js backends the suite measures: every backend `probeBackends()` lists, so one
 * added to common/tf/backend.ts (e.g. a native one) is benchmarked without touching the suite.
 */
export interface BackendStatus {
  /** The probe's label: "tfjs-node-gpu", "tfjs-node", "wasm", "cpu", or whatever a new backend calls itself. */
  backend: string;
  loaded: boolean;
  reason: string;
  kernels: string[];
  /** The WebGPU adapter the backend ran on (webgpu only): a real GPU's figures name it, as do a software rasterizer's. */
  adapter?: string;
}

/** Probe labels that differ from the initBackend preference that selects them. */
const PREFERENCE_OF_LABEL: Readonly<Record<string, BackendPreference>> = {
  "tfjs-node-gpu": "gpu",
  "tfjs-node": "node",
};

/** The initBackend preference for a probe label; a label it does not know is taken as the preference itself. */
export function preferenceOfProbe(label: string): BackendPreference {
  return PREFERENCE_OF_LABEL[label] ?? (label as BackendPreference);
}

/** The labels of every backend the probe knows, in its order (the auto order). */
export async function benchBackendLabels(): Promise<{ label: string; available: boolean; reason: string }[]> {
  return (await probeBackends()).map((p) => ({ label: p.backend, available: p.available, reason: p.reason }));
}

/** Switches to the backend with this probe label; a failure is reported, not thrown. */
export async function activateBenchBackend(label: string): Promise<BackendStatus> {
  try {
    const info = await initBackend(preferenceOfProbe(label));
    return {
      backend: label,
      loaded: true,
      reason: info.reason,
      kernels: info.kernels,
      ...(info.adapter !== undefined ? { adapter: describeAdapter(info.adapter) } : {}),
    };
  } catch (err) {
    return { backend: label, loaded: false, reason: errorMessage(err), kernels: [] };
  }
}

/**
 * Sets the backend's intra-op thread count, for backends that have one (only fedsim's native
 * backend, through setNativeThreads); null otherwise. Loaded by a computed specifier so the suite
 * builds and runs whether or not that module exists.
 */
export async function threadSetterFor(label: string): Promise<((threads: number) => void) | null> {
  if (label !== "native") return null;
  try {
    const specifier = "../common/tf/native.js";
    const mod = (await import(specifier)) as { setNativeThreads?: (threads: number) => void };
    const set = mod.setNativeThreads;
    return typeof set === "function" ? (threads) => set(threads) : null;
  } catch {
    return null;
  }
}
