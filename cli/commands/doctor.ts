import os from "node:os";
import { Command } from "commander";
import { describeAvailableDatasets } from "../../common/data/registry.js";
import { type WebSocketMaskingStatus, websocketMaskingStatus } from "../../common/net/websocket-masking.js";
import { findCudaLibraries, probeBackends } from "../../common/tf/backend.js";
import { type NativeStatus, nativeStatus } from "../../common/tf/native.js";
import { vectorPassesImplementation } from "../../common/vector-passes.js";

/** The native kernels' state: oneDNN's version and ISA, or why they are unavailable. */
export interface NativeReport extends NativeStatus {
  /** True when backend "auto" picks them: available, and no tfjs-node package loads. */
  usedByAuto: boolean;
}

/** What this machine offers fedsim: backends (and why not), native kernels, WebSocket masking, CUDA libraries, datasets. */
export async function runDoctor(): Promise<{
  node: string;
  cores: number;
  backends: Awaited<ReturnType<typeof probeBackends>>;
  native: NativeReport;
  websocketMasking: WebSocketMaskingStatus;
  /** The per-update passes (aggregation, validation, deltas): native SIMD loops or JavaScript. */
  vectorPasses: ReturnType<typeof vectorPassesImplementation>;
  cuda: string[];
  datasets: ReturnType<typeof describeAvailableDatasets>;
}> {
  const backends = await probeBackends();
  const native = nativeStatus();
  const before = backends.slice(
    0,
    backends.findIndex((b) => b.backend === "native"),
  );
  return {
    node: process.version,
    cores: os.cpus().length,
    backends,
    native: { ...native, usedByAuto: native.available && before.every((b) => !b.available) },
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
      out.push("", nativeLine(report.native));
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

function nativeLine(native: NativeReport): string {
  if (!native.available) return `native kernels: not available, ${native.reason}`;
  const state = native.usedByAuto
    ? "active (backend auto uses them)"
    : "available (a tfjs-node backend comes first)";
  return `native kernels: ${state}, oneDNN ${native.dnnlVersion}, ISA ${native.isa}, ${native.threads} threads (${native.path})`;
}
