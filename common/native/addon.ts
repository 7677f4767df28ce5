/**
 * Loading native/build/fedsim_native.node, the optional C++ addon (oneDNN) behind the `native` backend.
 *
 * A missing addon is the normal case (nobody ran `npm run build:native`, or libdnnl-dev is absent), so
 * loading never throws: it returns the addon or a one-line reason with the remedy.
 */
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

/** The addon's functions (native/src/*.cc). Arrays are read and written in place. */
export interface NativeAddon {
  info(): { dnnlVersion: string; isa: string; threads: number };
  setThreads(threads: number): void;
  /** geometry: [n, h, w, c, kh, kw, oc, oh, ow, sh, sw, dh, dw, padTop, padLeft, padBottom, padRight]. */
  conv2d(
    x: Float32Array,
    filter: Float32Array,
    bias: Float32Array | null,
    y: Float32Array,
    geometry: Int32Array,
    relu: boolean,
  ): void;
  conv2dBackpropInput(dy: Float32Array, filter: Float32Array, dx: Float32Array, geometry: Int32Array): void;
  conv2dBackpropFilter(x: Float32Array, dy: Float32Array, dw: Float32Array, geometry: Int32Array): void;
  matmul(
    a: Float32Array,
    b: Float32Array,
    c: Float32Array,
    batchA: number,
    batchB: number,
    m: number,
    n: number,
    k: number,
    transposeA: boolean,
    transposeB: boolean,
    bias: Float32Array | null,
    biasInner: number,
    relu: boolean,
  ): void;
  /**
   * w = c·(op(a)·op(b)) + w, with w [m, n]: an SGD step folded into the weight-gradient product
   * (c = −learning rate). Optional: an addon built before it still loads, and the step then runs as a
   * product into a gradient buffer plus sgdStepInPlace.
   */
  gradientStep?(
    a: Float32Array,
    b: Float32Array,
    w: Float32Array,
    m: number,
    n: number,
    k: number,
    transposeA: boolean,
    transposeB: boolean,
    c: number,
  ): void;
  /** geometry: [n, h, w, c, kh, kw, oh, ow, sh, sw, padTop, padLeft]. */
  maxPool(x: Float32Array, y: Float32Array, geometry: Int32Array): void;
  maxPoolGrad(dy: Float32Array, x: Float32Array, dx: Float32Array, geometry: Int32Array): void;
  binary(
    op: number,
    a: Float32Array,
    aInner: number,
    b: Float32Array,
    bInner: number,
    out: Float32Array,
  ): void;
  unary(op: number, x: Float32Array, out: Float32Array, alpha: number): void;
  sum(x: Float32Array, out: Float32Array, outer: number, reduce: number, inner: number): void;
  // Vector passes (native/src/vector.cc), used through common/vector-passes.ts. Optional: an addon built
  // before they existed still loads for the backend, and the passes then run in JavaScript.
  /** out[i] = Σ_k weights[k]·vectors[k][i] in float64; `weights` already divided by their total. */
  weightedMean?(vectors: readonly Float32Array[], weights: Float64Array, out: Float32Array): void;
  /** Index of the first NaN or ±Inf, or -1. */
  firstNonFinite?(x: Float32Array): number;
  /** out[i] = a[i] − b[i]; out may be a or b but may not partly overlap them. */
  subtract?(a: Float32Array, b: Float32Array, out: Float32Array): void;
  /** out[i] += scale·x[i], computed in float64. */
  addScaledInPlace?(out: Float32Array, x: Float32Array, scale: number): void;
  /** value[i] = float(c·gradient[i]) + value[i] in float32: tfjs's SGD update, in place (no overlap allowed). */
  sgdStepInPlace?(value: Float32Array, gradient: Float32Array, c: number): void;
}

/** Operation codes of native/src/elementwise.cc. */
export const BINARY_OPS = {
  Add: 0,
  Sub: 1,
  Multiply: 2,
  RealDiv: 3,
  Maximum: 4,
  SquaredDifference: 5,
  /** Not a tfjs kernel: dy where x > 0 (see native-gradients.ts). */
  ReluGrad: 6,
} as const;

export type AddonLoad =
  | { addon: NativeAddon; path: string }
  | { addon: undefined; path: string; reason: string };

export const BUILD_REMEDY = "apt-get install libdnnl-dev && npm run build:native";
const ADDON_FILE = path.join("native", "build", "fedsim_native.node");
const EXPECTED_FUNCTIONS = [
  "info",
  "setThreads",
  "conv2d",
  "matmul",
  "binary",
  "sum",
  "maxPoolGrad",
] as const;

/**
 * The addon's default location: native/build/ under the package root, found by walking up from this file
 * (it runs from common/native/ in tests and from dist/common/native/ when built). FEDSIM_NATIVE_ADDON overrides it.
 */
export function defaultAddonPath(): string {
  const override = process.env["FEDSIM_NATIVE_ADDON"];
  if (override !== undefined && override !== "") return path.resolve(override);
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(path.join(dir, "native", "build.mjs"))) return path.join(dir, ADDON_FILE);
    const parent = path.dirname(dir);
    if (parent === dir) break;
    dir = parent;
  }
  return path.resolve(fileURLToPath(new URL("../../", import.meta.url)), ADDON_FILE);
}

function firstLine(text: string): string {
  return text.split("\n", 1)[0]?.trim() ?? "";
}

/** Why a present file would not load, with what to do about it. */
function loadFailureReason(message: string): string {
  const line = firstLine(message);
  const missingLibrary = /(lib[\w.+-]+\.so[\w.]*): cannot open shared object file/.exec(line);
  if (missingLibrary !== null) {
    return `the native addon needs ${missingLibrary[1]}, which is not installed (apt-get install libdnnl2, or rebuild: ${BUILD_REMEDY})`;
  }
  return `the native addon failed to load: ${line} (rebuild it: npm run build:native)`;
}

const requireHere = createRequire(import.meta.url);

/** Loads the addon at `addonPath` (default: defaultAddonPath()); never throws. */
export function loadAddon(addonPath: string = defaultAddonPath()): AddonLoad {
  if (process.env["FEDSIM_DISABLE_NATIVE"] === "1") {
    return { addon: undefined, path: addonPath, reason: "disabled by FEDSIM_DISABLE_NATIVE=1" };
  }
  if (!existsSync(addonPath)) {
    return {
      addon: undefined,
      path: addonPath,
      reason: `not built: ${addonPath} is missing (${BUILD_REMEDY})`,
    };
  }
  let loaded: unknown;
  try {
    loaded = requireHere(addonPath);
  } catch (err) {
    return {
      addon: undefined,
      path: addonPath,
      reason: loadFailureReason(String((err as Error)?.message ?? err)),
    };
  }
  const missing = EXPECTED_FUNCTIONS.filter(
    (name) => typeof (loaded as Record<string, unknown> | null)?.[name] !== "function",
  );
  if (missing.length > 0) {
    return {
      addon: undefined,
      path: addonPath,
      reason: `${addonPath} is not fedsim's native addon or is outdated (missing ${missing.join(", ")}; rebuild: npm run build:native)`,
    };
  }
  return { addon: loaded as NativeAddon, path: addonPath };
}

const configuredLoads = new Map<string, AddonLoad>();

/**
 * The addon as every part of fedsim uses it (the native backend, the vector passes): loaded once per path,
 * with its OpenMP thread count set to defaultNativeThreads() on first load. Never throws.
 */
export function loadConfiguredAddon(addonPath: string = defaultAddonPath()): AddonLoad {
  let result = configuredLoads.get(addonPath);
  if (result === undefined) {
    result = loadAddon(addonPath);
    configuredLoads.set(addonPath, result);
    if (result.addon !== undefined) result.addon.setThreads(defaultNativeThreads());
  }
  return result;
}

/**
 * FEDSIM_NATIVE_THREADS, else OMP_NUM_THREADS (libgomp already applied it), else one per core. A process
 * of a pool of N should use cores/N: set FEDSIM_NATIVE_THREADS in its environment or call setNativeThreads.
 */
export function defaultNativeThreads(): number {
  const fromEnv = Number.parseInt(process.env["FEDSIM_NATIVE_THREADS"] ?? "", 10);
  if (Number.isInteger(fromEnv) && fromEnv >= 1) return fromEnv;
  const omp = Number.parseInt(process.env["OMP_NUM_THREADS"] ?? "", 10);
  if (Number.isInteger(omp) && omp >= 1) return omp;
  return os.availableParallelism();
}
