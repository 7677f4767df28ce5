/**
 * The WebGPU backend: @tensorflow/tfjs-backend-webgpu on Dawn, Chrome's WebGPU implementation, from the
 * npm package `webgpu` (it ships a prebuilt dawn.node per platform, so installing downloads nothing
 * else). Both are optional dependencies of fedsim.
 *
 * Dawn is asked for an adapter through the platform's GPU API (Vulkan, Metal, D3D12). Backend "auto"
 * takes only a real GPU from there. A forced "webgpu" also takes a software rasterizer, and on Linux
 * falls back to Dawn's OpenGL ES backend in compatibility mode, which finds Mesa's llvmpipe on a
 * machine without a GPU: slow, but it runs the same shaders, which is how CI tests this path.
 */
import { existsSync } from "node:fs";
import path from "node:path";
import * as tf from "@tensorflow/tfjs";
import { BackendLoadFailure, importPackage, resolvePackage } from "./packages.js";

export const WEBGPU_BACKEND = "webgpu";
const DAWN_PACKAGE = "webgpu";
const TFJS_WEBGPU = "@tensorflow/tfjs-backend-webgpu";

/** The one command that brings both packages back (npm leaves optional dependencies out with --omit=optional). */
export const WEBGPU_INSTALL = `npm install ${DAWN_PACKAGE}@^0.6.2 ${TFJS_WEBGPU}@^4.22.0`;
/** What Mesa's software adapter needs on Debian/Ubuntu (Dawn reaches it through EGL). */
export const SOFTWARE_ADAPTER_INSTALL = "apt-get install libegl-mesa0 libgl1-mesa-dri";

/** The limits tfjs-backend-webgpu asks the device for, shown by `fedsim doctor`. */
const LIMITS = [
  "maxBufferSize",
  "maxStorageBufferBindingSize",
  "maxComputeWorkgroupStorageSize",
  "maxComputeInvocationsPerWorkgroup",
  "maxComputeWorkgroupSizeX",
  "maxComputeWorkgroupsPerDimension",
] as const;

export interface WebGpuAdapter {
  vendor: string;
  architecture: string;
  device: string;
  description: string;
  /** Dawn's backend that found the adapter: "vulkan", "metal", "d3d12" or "opengles". */
  dawnBackend: string;
  featureLevel: "core" | "compatibility";
  /** Why this adapter is a software rasterizer, or null for a GPU. */
  software: string | null;
  limits: Record<(typeof LIMITS)[number], number>;
}

/** What a WebGPU adapter reports about itself (GPUAdapterInfo). */
export interface AdapterInfoFields {
  vendor?: string;
  architecture?: string;
  device?: string;
  description?: string;
  isFallbackAdapter?: boolean;
}

const SOFTWARE_NAMES = /llvmpipe|lavapipe|softpipe|swiftshader|basic render driver|software/i;

/** Why the adapter is a software rasterizer (CPU-rendered), or null when it looks like a GPU. */
export function softwareAdapterReason(info: AdapterInfoFields): string | null {
  if (info.isFallbackAdapter === true) return "Dawn marks it as a fallback (CPU) adapter";
  const text = [info.vendor, info.architecture, info.device, info.description].join(" ");
  const match = SOFTWARE_NAMES.exec(text);
  return match === null ? null : `${match[0]} is a software rasterizer that runs on the CPU`;
}

/** One line naming the adapter: "nvidia ampere (NVIDIA: 550.54) via Dawn vulkan". */
export function describeAdapter(adapter: WebGpuAdapter): string {
  const name = [adapter.vendor, adapter.architecture, adapter.device].filter((s) => s !== "").join(" ");
  const detail = adapter.description === "" ? "" : ` (${adapter.description})`;
  const software = adapter.software === null ? "" : ", software";
  return `${name === "" ? "unnamed adapter" : name}${detail} via Dawn ${adapter.dawnBackend}${software}`;
}

interface GpuAdapterLike {
  readonly info: AdapterInfoFields;
  readonly limits: Record<string, number>;
  requestDevice(descriptor?: { requiredLimits?: Record<string, number> }): Promise<unknown>;
}
interface GpuLike {
  requestAdapter(options?: {
    powerPreference?: string;
    featureLevel?: string;
  }): Promise<GpuAdapterLike | null>;
}
interface DawnModule {
  create(flags: string[]): GpuLike;
  globals: Record<string, unknown>;
}
interface TfjsWebGpuModule {
  WebGPUBackend: new (device: unknown, adapterInfo: unknown) => tf.KernelBackend;
}

/** A Dawn API to try: the GPU ones come first; the software fallback only when forced. */
interface DawnApi {
  name: string;
  featureLevel: WebGpuAdapter["featureLevel"];
  softwareFallback: boolean;
  /** Why the API cannot work here, checked before loading Dawn, or null. */
  missing(): string | null;
}

const VULKAN_LOADER_DIRS = [
  "/usr/lib/x86_64-linux-gnu",
  "/usr/lib/aarch64-linux-gnu",
  "/usr/lib64",
  "/usr/lib",
  "/lib/x86_64-linux-gnu",
  "/lib/aarch64-linux-gnu",
  "/usr/local/lib",
];

/** Dawn prints a warning when it cannot load Vulkan, so look for the loader first. */
function vulkanLoaderMissing(): string | null {
  const fromEnv = (process.env["LD_LIBRARY_PATH"] ?? "").split(":").filter((dir) => dir !== "");
  const found = [...fromEnv, ...VULKAN_LOADER_DIRS].some((dir) =>
    existsSync(path.join(dir, "libvulkan.so.1")),
  );
  return found
    ? null
    : "no Vulkan loader (libvulkan.so.1 not found): install the GPU driver's Vulkan support";
}

/** Overrides the Dawn backends tried, in order (comma-separated), e.g. "vulkan" or "opengles". */
export const DAWN_BACKENDS_ENV = "FEDSIM_DAWN_BACKENDS";
const DAWN_BACKEND_NAMES = ["vulkan", "metal", "d3d12", "d3d11", "opengl", "opengles"];

/** The Dawn APIs to try here: the platform's, or the ones FEDSIM_DAWN_BACKENDS names. */
function configuredApis(): DawnApi[] {
  const listed = process.env[DAWN_BACKENDS_ENV];
  const platform = dawnApis(process.platform);
  if (listed === undefined || listed.trim() === "") return platform;
  return listed.split(",").map((raw) => {
    const name = raw.trim();
    if (!DAWN_BACKEND_NAMES.includes(name)) {
      throw new BackendLoadFailure(
        `${DAWN_BACKENDS_ENV}: unknown Dawn backend "${name}"; known: ${DAWN_BACKEND_NAMES.join(", ")}`,
      );
    }
    const known = platform.find((api) => api.name === name);
    // Named explicitly, an API counts as a GPU API: auto still refuses a software adapter from it.
    const gl = name.startsWith("opengl");
    return {
      name,
      featureLevel: gl ? "compatibility" : "core",
      softwareFallback: false,
      missing: known?.missing ?? (() => null),
    };
  });
}

function dawnApis(platform: NodeJS.Platform): DawnApi[] {
  const api = (name: string, missing: () => string | null = () => null): DawnApi => ({
    name,
    featureLevel: "core",
    softwareFallback: false,
    missing,
  });
  switch (platform) {
    case "linux":
      return [
        api("vulkan", vulkanLoaderMissing),
        { name: "opengles", featureLevel: "compatibility", softwareFallback: true, missing: () => null },
      ];
    case "darwin":
      return [api("metal")];
    case "win32":
      return [api("d3d12"), api("vulkan")];
    default:
      return [api("vulkan")];
  }
}

let dawn: Promise<DawnModule> | undefined;

function loadDawn(): Promise<DawnModule> {
  // Mesa's EGL must not look for a display server; it reads this when Dawn first opens EGL.
  process.env["EGL_PLATFORM"] ??= "surfaceless";
  dawn ??= importPackage(DAWN_PACKAGE, `not installed (${WEBGPU_INSTALL})`).then((m) => m as DawnModule);
  // A failed load is retried by the next call rather than remembered.
  dawn.catch(() => {
    dawn = undefined;
  });
  return dawn;
}

interface FoundAdapter {
  adapter: WebGpuAdapter;
  gpu: GpuLike;
  handle: GpuAdapterLike;
}

/**
 * The first adapter Dawn offers, trying the platform's APIs in order; with `allowSoftware` false the
 * software fallback API is not tried and a software adapter from a GPU API is passed over. Throws
 * BackendLoadFailure naming what each API lacked.
 */
async function findAdapter(allowSoftware: boolean): Promise<FoundAdapter> {
  const problems: string[] = [];
  let module: DawnModule | undefined;
  for (const api of configuredApis()) {
    if (api.softwareFallback && !allowSoftware) continue;
    const missing = api.missing();
    if (missing !== null) {
      problems.push(`${api.name}: ${missing}`);
      continue;
    }
    module ??= await loadDawn();
    const gpu = module.create([`backend=${api.name}`]);
    const handle = await gpu.requestAdapter({
      powerPreference: "high-performance",
      featureLevel: api.featureLevel,
    });
    if (handle === null) {
      const hint = api.softwareFallback
        ? ` (Mesa's software adapter needs: ${SOFTWARE_ADAPTER_INSTALL})`
        : "";
      problems.push(`${api.name}: Dawn found no adapter${hint}`);
      continue;
    }
    const adapter = toAdapter(handle, api);
    if (adapter.software !== null && !allowSoftware) {
      problems.push(
        `${api.name}: only a software adapter, ${describeAdapter(adapter)}; force it with backend "webgpu"`,
      );
      continue;
    }
    return { adapter, gpu, handle };
  }
  throw new BackendLoadFailure(`no ${allowSoftware ? "" : "GPU "}adapter (${problems.join("; ")})`);
}

function toAdapter(handle: GpuAdapterLike, api: DawnApi): WebGpuAdapter {
  const info = handle.info;
  const limits = Object.fromEntries(LIMITS.map((name) => [name, Number(handle.limits[name])]));
  return {
    vendor: info.vendor ?? "",
    architecture: info.architecture ?? "",
    device: info.device ?? "",
    description: info.description ?? "",
    dawnBackend: api.name,
    featureLevel: api.featureLevel,
    software: softwareAdapterReason(info),
    limits: limits as WebGpuAdapter["limits"],
  };
}

/**
 * The adapter this machine would train on (GPU only unless `allowSoftware`), without creating a device
 * or touching tfjs: for `fedsim doctor`. Throws BackendLoadFailure with what is missing.
 */
export async function probeWebGpuAdapter(allowSoftware: boolean): Promise<WebGpuAdapter> {
  if (registered !== undefined && (allowSoftware || registered.software === null)) return registered;
  return (await findAdapterOnce(allowSoftware)).adapter;
}

/** Adapters found so far: asking Dawn again finds the same one (and prints its warnings again). */
const foundAdapters = new Map<string, FoundAdapter>();

async function findAdapterOnce(allowSoftware: boolean): Promise<FoundAdapter> {
  const key = `${allowSoftware} ${process.env[DAWN_BACKENDS_ENV] ?? ""}`;
  const known = foundAdapters.get(key);
  if (known !== undefined) return known;
  const found = await findAdapter(allowSoftware);
  foundAdapters.set(key, found);
  return found;
}

/** Whether `--backend webgpu` would load here, on which adapter, and whether auto would pick it. */
export async function probeWebGpu(): Promise<{
  available: boolean;
  reason: string;
  adapter?: WebGpuAdapter;
}> {
  try {
    resolvePackage(TFJS_WEBGPU, `${TFJS_WEBGPU} not installed (${WEBGPU_INSTALL})`);
    const adapter = await probeWebGpuAdapter(true);
    const active = tf.getBackend() === WEBGPU_BACKEND ? "active; " : "";
    const auto =
      adapter.software === null
        ? "auto picks it"
        : `auto passes it over (${adapter.software}); --backend webgpu forces it`;
    return { available: true, reason: `${active}${describeAdapter(adapter)}; ${auto}`, adapter };
  } catch (err) {
    if (!(err instanceof BackendLoadFailure)) throw err;
    return { available: false, reason: err.message };
  }
}

/** The adapter behind the registered tfjs backend; a process keeps the first device it creates. */
let registered: WebGpuAdapter | undefined;

/**
 * Registers tfjs's "webgpu" backend on Dawn's adapter (GPU only unless `allowSoftware`) and returns
 * that adapter; switching to it is the caller's job. Throws BackendLoadFailure when either package or
 * a suitable adapter is missing.
 */
export async function registerWebGpuBackend(allowSoftware: boolean): Promise<WebGpuAdapter> {
  if (registered !== undefined) {
    if (registered.software !== null && !allowSoftware) {
      throw new BackendLoadFailure(`only a software adapter, ${describeAdapter(registered)}`);
    }
    return registered;
  }
  const tfjsWebGpu = (await importPackage(
    TFJS_WEBGPU,
    `not installed (${WEBGPU_INSTALL})`,
  )) as TfjsWebGpuModule;
  const { adapter, gpu, handle } = await findAdapterOnce(allowSoftware);
  // tfjs-backend-webgpu asks for the adapter's own limits, as its browser registration does.
  const requiredLimits = Object.fromEntries(
    LIMITS.map((name) => [name, handle.limits[name]] as const).filter(([, v]) => v !== undefined),
  ) as Record<string, number>;
  const device = await handle.requestDevice({ requiredLimits });
  // tfjs-backend-webgpu reads navigator.gpu and the GPU* constants (GPUBufferUsage, ...) as globals.
  installGlobals((await loadDawn()).globals, gpu);
  if (tf.findBackend(WEBGPU_BACKEND) !== null || tf.findBackendFactory(WEBGPU_BACKEND) !== null) {
    tf.removeBackend(WEBGPU_BACKEND);
  }
  tf.registerBackend(WEBGPU_BACKEND, () => new tfjsWebGpu.WebGPUBackend(device, handle.info));
  registered = adapter;
  return adapter;
}

function installGlobals(globals: Record<string, unknown>, gpu: GpuLike): void {
  const scope = globalThis as Record<string, unknown>;
  for (const [name, value] of Object.entries(globals)) scope[name] ??= value;
  const nav = scope["navigator"] as Record<string, unknown> | undefined;
  if (nav === undefined) {
    scope["navigator"] = { gpu };
  } else {
    Object.defineProperty(nav, "gpu", { value: gpu, configurable: true });
  }
}
