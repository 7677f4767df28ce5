import { Command } from "commander";
import { z } from "zod";
import { X_AXIS_CHOICES } from "../../scenarios/report/x-axis.js";
import { num, parseOptions } from "../options.js";

const compareOptionsSchema = z.object({
  target: z
    .number({ error: "must be a number" })
    .refine((t) => t > 0 && t <= 1, "must be an accuracy in (0, 1]")
    .optional(),
  out: z.string().min(1).optional(),
  json: z.boolean().optional(),
  x: z.enum(X_AXIS_CHOICES).optional(),
});

/**
 * `fedsim compare DIR...`: overlays runs on one set of charts and prints rounds to a target
 * accuracy. Without --target: the lowest `finalAccuracy ≥` expectation among the runs, else
 * 0.9 × the best final accuracy.
 */
export function compareCommand(): Command {
  return new Command("compare")
    .description("overlay several runs' accuracy, loss and ε, and tabulate rounds to a target accuracy")
    .argument("<dirs...>", "run directories written by `fedsim run --out DIR`")
    .option(
      "--target <accuracy>",
      "target accuracy in (0, 1] (default: the runs' lowest finalAccuracy expectation, else 0.9 × the best final accuracy)",
      num,
    )
    .option("--out <file>", "where to write the HTML page", "compare.html")
    .option("--json", "print the comparison as one JSON object instead of a table")
    .option(
      "--x <axis>",
      "x axis of the charts: round, simulated-hours or wall-clock (default: simulated-hours when every run used the virtual clock, else round)",
    )
    .action(async (dirs: string[], raw: unknown) => {
      const opts = parseOptions(compareOptionsSchema, raw);
      // Loaded here: ECharts takes about a second to import, which other commands need not pay.
      const { compareRuns, formatCompareTable } = await import("../../scenarios/report/compare.js");
      const result = await compareRuns(dirs, {
        ...(opts.target !== undefined ? { target: opts.target } : {}),
        ...(opts.out !== undefined ? { out: opts.out } : {}),
        ...(opts.x !== undefined ? { x: opts.x } : {}),
      });
      if (opts.json) {
        process.stdout.write(`${JSON.stringify(result)}\n`);
        return;
      }
      process.stdout.write(`${formatCompareTable(result)}\nwrote ${result.html}\n`);
    });
}
