import { Command } from "commander";
import { z } from "zod";
import { X_AXIS_CHOICES } from "../../scenarios/report/x-axis.js";
import { parseOptions } from "../options.js";

const reportOptionsSchema = z.object({ x: z.enum(X_AXIS_CHOICES).optional() });

/** `fedsim report DIR`: rebuilds DIR/report.html from DIR/summary.json. */
export function reportCommand(): Command {
  return new Command("report")
    .description(
      "build DIR/report.html (charts of accuracy, loss, ε, participation, timeline) from DIR/summary.json",
    )
    .argument("<dir>", "a run directory written by `fedsim run --out DIR`")
    .option(
      "--x <axis>",
      "x axis of the line charts: round, simulated-hours or wall-clock (default: simulated-hours for runs on the virtual clock, else round)",
    )
    .action(async (dir: string, raw: unknown) => {
      const opts = parseOptions(reportOptionsSchema, raw);
      // Loaded here: ECharts takes about a second to import, which other commands need not pay.
      const { writeReport } = await import("../../scenarios/report-html.js");
      const file = await writeReport(dir, opts.x !== undefined ? { x: opts.x } : {});
      process.stdout.write(`${file}\n`);
    });
}
