import { Command } from "commander";

/** `fedsim report DIR`: rebuilds DIR/report.html from DIR/summary.json. */
export function reportCommand(): Command {
  return new Command("report")
    .description(
      "build DIR/report.html (charts of accuracy, loss, ε, participation, timeline) from DIR/summary.json",
    )
    .argument("<dir>", "a run directory written by `fedsim run --out DIR`")
    .action(async (dir: string) => {
      // Loaded here: ECharts takes about a second to import, which other commands need not pay.
      const { writeReport } = await import("../../scenarios/report-html.js");
      const file = await writeReport(dir);
      process.stdout.write(`${file}\n`);
    });
}
