import os from "node:os";
import { Command } from "commander";
import { describeAvailableDatasets } from "../../common/data/registry.js";
import { type WebSocketMaskingStatus, websocketMaskingStatus } from "../../common/net/websocket-masking.js";
import { findCudaLibraries, probeBackends } from "../../common/tf/backend.js";
import { type NativeStatus, nativeStatus } from "../../common/tf/native.js";
import { SOFTWARE_ADAPTER_INSTALL, WEBGPU_INSTALL, type WebGpuAdapter } from "../../common/tf/webgpu.js";
import { vectorPassesImplementation } from "../../common/vector-passes.js";

/** The native kernels' state: oneDNN's version and ISA, or why they are unavailable. */
export interface NativeReport extends NativeStatus {
  /** True when backend "auto" picks them: available, and no tfjs-node package loads. */
  usedByAuto: boolean;
}

/** The WebGPU adapter fedsim would train on, or what is missing and how to install it. */
export interface WebGpuReport {
  available: boolean;
  /** True when backend "auto" picks it: an adapter that is not a software rasterizer. */
  usedByAuto: boolean;
  reason: string;
  adapter?: WebGpuAdapter;
  /** Commands that bring the missing pieces, when no adapter loads. */
  install?: string[];
}

/** What this machine offers fedsim: backends (and why not), native kernels, WebSocket masking, CUDA libraries, datasets. */
export async function runDoctor(): Promise<{
  node: string;
  cores: number;
  backends: Awaited<ReturnType<typeof probeBackends>>;
  native: NativeReport;
  webgpu: WebGpuReport;
  websocketMasking: WebSocketMaskingStatus;
  /** The per-update passes (aggregation, validation, deltas): native SIMD loops or JavaScript. */
  vectorPasses: ReturnType<typeof vectorPassesImplementation>;
  cuda: string[];
  datasets: ReturnType<typeof describeAvailableDatasets>;
}> {
  const backends = await probeBackends();
  const native = nativeStatus();
  const webgpu = webgpuReport(backends.find((b) => b.backend === "webgpu"));
  const before = backends.slice(
    0,
    backends.findIndex((b) => b.backend === "native"),
  );
  const autoStopsBefore = before.some((b) => (b.backend === "webgpu" ? webgpu.usedByAuto : b.available));
  return {
    node: process.version,
    cores: os.cpus().length,
    backends,
    native: { ...native, usedByAuto: native.available && !autoStopsBefore },
    webgpu,
    websocketMasking: websocketMaskingStatus(),
    vectorPasses: vectorPassesImplementation(),
    cuda: findCudaLibraries(),
    datasets: describeAvailableDatasets(),
  };
}

export function doctorCommand(): Command {
  return new Command("doctor")
    .description(
      "show which TensorFlow.js backends, native kernels, WebSocket masking, CUDA libraries and datasets are available",
    )
    .option("--json", "print JSON")
    .action(async (opts: { json?: boolean }) => {
      const report = await runDoctor();
      if (opts.json) {
        process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
        return;
      }
      const out: string[] = [
        `node ${report.node}, ${report.cores} cores`,
        "",
        "backends (auto picks the first available):",
      ];
      for (const b of report.backends)
        out.push(`  ${b.available ? "yes" : "no "}  ${b.backend.padEnd(14)} ${b.reason}`);
      out.push("", ...webgpuLines(report.webgpu), "", nativeLine(report.native));
      out.push(`update passes: ${report.vectorPasses.implementation}, ${report.vectorPasses.reason}`);
      out.push(
        `WebSocket masking: ${report.websocketMasking.native ? "native" : "JavaScript"}, ${report.websocketMasking.reason}`,
      );
      out.push(
        "",
        `CUDA libraries: ${report.cuda.length > 0 ? report.cuda.join(", ") : "none found"}`,
        "",
        "datasets:",
      );
      for (const d of report.datasets)
        out.push(`  ${d.available ? "yes" : "no "}  ${d.name.padEnd(14)} ${d.where}`);
      process.stdout.write(`${out.join("\n")}\n`);
    });
}

function webgpuReport(probe: Awaited<ReturnType<typeof probeBackends>>[number] | undefined): WebGpuReport {
  if (probe === undefined) return { available: false, usedByAuto: false, reason: "not probed" };
  const adapter = probe.adapter;
  if (probe.available && adapter !== undefined) {
    return { available: true, usedByAuto: adapter.software === null, reason: probe.reason, adapter };
  }
  const install = probe.reason.includes("not installed") ? [WEBGPU_INSTALL] : [];
  if (process.platform === "linux") {
    install.push(
      "for a GPU: its driver with Vulkan support (NVIDIA's driver, or Mesa's mesa-vulkan-drivers for AMD and Intel) and libvulkan1",
      `for Mesa's software adapter (slow; --backend webgpu only): ${SOFTWARE_ADAPTER_INSTALL}`,
    );
  }
  return { available: false, usedByAuto: false, reason: probe.reason, install };
}

function webgpuLines(webgpu: WebGpuReport): string[] {
  const adapter = webgpu.adapter;
  if (!webgpu.available || adapter === undefined) {
    return [
      `webgpu: no adapter, ${webgpu.reason}`,
      ...(webgpu.install ?? []).map((line) => `  install: ${line}`),
    ];
  }
  const state = webgpu.usedByAuto
    ? "auto picks it"
    : `software rasterizer (${adapter.software}): auto passes it over, --backend webgpu forces it`;
  const limits = Object.entries(adapter.limits).map(([name, value]) => `${name} ${value}`);
  return [
    `webgpu: ${state}`,
    `  vendor ${adapter.vendor || "(not reported)"}, architecture ${adapter.architecture || "(not reported)"}, device ${adapter.device || "(not reported)"}`,
    `  ${adapter.description || "(no description)"}; Dawn backend ${adapter.dawnBackend}, feature level ${adapter.featureLevel}`,
    `  limits: ${limits.join(", ")}`,
  ];
}

function nativeLine(native: NativeReport): string {
  if (!native.available) return `native kernels: not available, ${native.reason}`;
  const state = native.usedByAuto
    ? "active (backend auto uses them)"
    : "available (a tfjs-node backend comes first)";
  return `native kernels: ${state}, oneDNN ${native.dnnlVersion}, ISA ${native.isa}, ${native.threads} threads (${native.path})`;
}
