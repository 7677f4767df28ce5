import type { TargetResult } from "./targets.js";

/**
 * The README's benchmark sentence, written from bench/results/latest.json by `npm run bench` and
 * `--render` between two markers, so the README quotes only figures the committed results hold, with
 * their date and CPU model.
 */
export const README_START =
  "<!-- bench:figures (written by npm run bench from bench/results/latest.json) -->";
export const README_END = "<!-- /bench:figures -->";

export interface ReadmeInputs {
  generatedAt: string;
  environment: { cpuModel: string; cores: number; loadAverage: { start: number; end?: number | null } };
  targets: readonly Pick<TargetResult, "id" | "measured" | "status">[];
  reference: { blasChoicesTried?: string[] } | null;
  /** Per section: when, --quick or not, and the load average when it started. */
  measured?: Partial<Record<string, { quick: boolean; loadAverage?: number }>>;
}

/** "load average 18.6–20.6 (--quick)" over the sections the sentence quotes. */
function conditions(r: ReadmeInputs): string {
  const quoted = ["training", "aggregation", "timeToAccuracy"].map((s) => r.measured?.[s]);
  const loads = quoted.map((m) => m?.loadAverage).filter((l): l is number => l !== undefined);
  const quick = quoted.some((m) => m?.quick === true);
  const range =
    loads.length === 0
      ? `load average ${r.environment.loadAverage.start}`
      : `load average ${Math.min(...loads)}–${Math.max(...loads)} while these sections ran`;
  return `${range}${quick ? ", some sections in --quick mode" : ""}`;
}

function figure(inputs: ReadmeInputs, id: string): string {
  const t = inputs.targets.find((x) => x.id === id);
  if (t === undefined || t.measured === null) return "(not measured)";
  return `${t.measured}×`;
}

export function readmeFigures(r: ReadmeInputs): string {
  const e = r.environment;
  const configurations = r.reference?.blasChoicesTried?.length;
  const torch =
    configurations === undefined
      ? "a PyTorch reference measured in the same run"
      : `PyTorch measured in the same run (each case the fastest of ${configurations} OpenBLAS configurations at 1 and ${e.cores} threads)`;
  const met = r.targets.filter((t) => t.status === "met").length;
  return [
    `In the committed benchmark ([bench/results/latest.json](bench/results/latest.json), ${r.generatedAt.slice(0, 10)}, ` +
      `${e.cpuModel} with ${e.cores} cores, ${conditions(r)}), ` +
      `against ${torch}: the CNN trains at ${figure(r, "training-cnn-b10")} PyTorch's speed at batch 10 and ` +
      `${figure(r, "training-cnn-b50")} at batch 50, the 2NN at ${figure(r, "training-2nn-b10")} at batch 10 and ` +
      `${figure(r, "training-2nn-b50")} at batch 50; FedAvg's aggregation runs at ${figure(r, "aggregation")} the speed of a ` +
      `native weighted sum compiled for the CPU; the quickstart reaches its target accuracy in ` +
      `${figure(r, "time-to-accuracy")} the time PyTorch FedAvg on both cores takes, both counted from process launch. ` +
      `${met} of the ${r.targets.length} targets are met; the targets table in [docs/BENCHMARKS.md](docs/BENCHMARKS.md) has each.`,
  ].join("\n");
}

/** `readme` with the text between the markers replaced by the figures; unchanged when the markers are absent. */
export function withReadmeFigures(readme: string, r: ReadmeInputs): string {
  const start = readme.indexOf(README_START);
  const end = readme.indexOf(README_END);
  if (start < 0 || end < start) return readme;
  return `${readme.slice(0, start + README_START.length)}\n${readmeFigures(r)}\n${readme.slice(end)}`;
}
