import os from "node:os";
import { Command } from "commander";
import { describeAvailableDatasets } from "../../common/data/registry.js";
import { findCudaLibraries, probeBackends } from "../../common/tf/backend.js";

/** What this machine offers fedsim: backends (and why not), CUDA libraries, datasets. */
export async function runDoctor(): Promise<{
  node: string;
  cores: number;
  backends: Awaited<ReturnType<typeof probeBackends>>;
  cuda: string[];
  datasets: ReturnType<typeof describeAvailableDatasets>;
}> {
  return {
    node: process.version,
    cores: os.cpus().length,
    backends: await probeBackends(),
    cuda: findCudaLibraries(),
    datasets: describeAvailableDatasets(),
  };
}

export function doctorCommand(): Command {
  return new Command("doctor")
    .description("show which TensorFlow.js backends, CUDA libraries and datasets are available")
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
