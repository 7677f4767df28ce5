import { mkdir, rename, writeFile } from "node:fs/promises";
import path from "node:path";
import type { RoundRecord } from "../server/round-record.js";
import { buildRunSummary, type RunSummary, type RunSummaryInput } from "./report.js";

/**
 * Writes a run's summary.json and rebuilds report.html from it: after a scenario run, and after
 * every round (and on Ctrl-C) of `fedsim coordinator --out`. summary.json is replaced atomically,
 * so `fedsim report` or `compare` reading it mid-run never sees half a file.
 */
export async function writeRunFiles(outDir: string, summary: RunSummary): Promise<void> {
  await mkdir(outDir, { recursive: true });
  const file = path.join(outDir, "summary.json");
  const partial = `${file}.partial`;
  await writeFile(partial, `${JSON.stringify(summary, null, 2)}\n`);
  await rename(partial, file);
  // Imported here: echarts takes a second or more to load, which plain CLI starts should not pay.
  const { writeReport } = await import("./report-html.js");
  await writeReport(outDir);
}

/**
 * The files of a run that is still going: rewritten after every round and once more when it ends
 * or is stopped, one write at a time, so the folder always holds the rounds that ended.
 */
export class LiveRunFiles {
  private pending: Promise<void> = Promise.resolve();
  private readonly started = performance.now();

  constructor(
    private readonly outDir: string,
    private readonly describe: () => Omit<RunSummaryInput, "records" | "seconds">,
    private readonly log: (line: string) => void,
  ) {}

  /** Queues a rewrite from these records; resolves once it (and any before it) is on disk. */
  write(
    records: readonly RoundRecord[],
    end: Pick<RunSummaryInput, "stopReason" | "final"> = {},
  ): Promise<void> {
    const summary = buildRunSummary({
      ...this.describe(),
      ...end,
      records: [...records],
      seconds: (performance.now() - this.started) / 1000,
    });
    this.pending = this.pending
      .then(() => writeRunFiles(this.outDir, summary))
      .catch((err) => this.log(`could not write ${this.outDir}/summary.json: ${(err as Error).message}`));
    return this.pending;
  }
}
