/**
 * The benchmark suite behind `npm run bench`. Usage:
 *   node dist/bench/run.js [--quick] [--only training,aggregation,privacy,transfer,roundOverhead,parallel,timeToAccuracy,poolSession,asyncSimulation,scaleOut]
 *   node dist/bench/run.js --render
 * Writes bench/results/latest.json and docs/BENCHMARKS.md, rewrites README's benchmark sentence, and prints the tables.
 * With --only, sections not run are carried over from the previous latest.json; --render measures
 * nothing and rewrites both files from it (after a change to the report or the targets).
 */
import { mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { describeEnvironment } from "./environment.js";
import { repoRoot } from "./paths.js";
import { withReadmeFigures } from "./report/readme-figures.js";
import { type BenchResults, renderMarkdown, renderText } from "./report/report.js";
import { evaluateTargets } from "./report/targets.js";
import { runAggregation } from "./sections/aggregation.js";
import { runAsyncSimulation } from "./sections/async-simulation.js";
import { runParallel } from "./sections/parallel.js";
import { runPoolSession } from "./sections/pool-session.js";
import { runPrivacy } from "./sections/privacy.js";
import { runRoundOverhead } from "./sections/round-overhead.js";
import { runScaleOut } from "./sections/scale-out.js";
import { runTimeToAccuracy } from "./sections/time-to-accuracy.js";
import { runTraining } from "./sections/training.js";
import { runTransfer } from "./sections/transfer.js";
import { parseSections, SECTION_NAMES, type SectionName } from "./sections.js";
import { errorMessage } from "./timing.js";

function readPrevious(file: string): BenchResults | undefined {
  try {
    const parsed = JSON.parse(readFileSync(file, "utf8")) as BenchResults;
    return parsed.schema === 1 ? parsed : undefined;
  } catch {
    return undefined;
  }
}

function writeAtomically(file: string, content: string): void {
  mkdirSync(path.dirname(file), { recursive: true });
  const temporary = `${file}.tmp`;
  writeFileSync(temporary, content);
  renameSync(temporary, file);
}

function emptyResults(quick: boolean, sections: SectionName[]): BenchResults {
  return {
    schema: 1,
    generatedAt: new Date().toISOString(),
    command: ["node", "dist/bench/run.js", ...process.argv.slice(2)].join(" "),
    quick,
    sectionsRun: sections,
    measured: {},
    environment: { ...describeEnvironment(), backends: null, torch: null, blasConfig: null },
    reference: null,
    training: null,
    aggregation: null,
    privacy: null,
    transfer: null,
    roundOverhead: null,
    parallel: null,
    timeToAccuracy: null,
    poolSession: null,
    asyncSimulation: null,
    scaleOut: null,
    targets: [],
    errors: {},
  };
}

/** Keeps the sections this run does not measure, so a partial run does not erase a full one. */
function carryOver(results: BenchResults, previous: BenchResults | undefined): void {
  if (previous === undefined) return;
  for (const section of SECTION_NAMES) {
    if (results.sectionsRun.includes(section)) continue;
    const at = previous.measured?.[section];
    if (at === undefined) continue;
    results.measured[section] = at;
    // A file written before a section existed lacks its key: it stays null.
    (results as unknown as Record<string, unknown>)[section] =
      (previous as unknown as Record<string, unknown>)[section] ?? null;
    if (section === "training") {
      results.reference = previous.reference;
      results.environment.backends = previous.environment.backends;
      results.environment.torch = previous.environment.torch;
      results.environment.blasConfig = previous.environment.blasConfig;
    }
  }
}

type SectionOptions = { quick: boolean; log: (line: string) => void };

/** Measures one section and stores it in `results`. */
async function measureSection(
  section: SectionName,
  results: BenchResults,
  options: SectionOptions,
): Promise<void> {
  switch (section) {
    case "training": {
      const training = await runTraining(options);
      results.training = training.rows;
      results.reference = training.reference;
      results.environment.backends = training.backends;
      results.environment.torch = training.reference.torch;
      results.environment.blasConfig = training.reference.openblasConfig ?? training.reference.blas;
      return;
    }
    case "aggregation":
      results.aggregation = await runAggregation(options);
      return;
    case "privacy":
      results.privacy = await runPrivacy(options);
      return;
    case "transfer":
      results.transfer = await runTransfer(options);
      return;
    case "roundOverhead":
      results.roundOverhead = await runRoundOverhead(options);
      return;
    case "parallel":
      results.parallel = await runParallel(options);
      return;
    case "timeToAccuracy":
      // The OpenBLAS configuration the training section found fastest for the quickstart's case.
      results.timeToAccuracy = await runTimeToAccuracy({ ...options, training: results.training });
      return;
    case "poolSession":
      results.poolSession = await runPoolSession(options);
      return;
    case "asyncSimulation":
      results.asyncSimulation = await runAsyncSimulation(options);
      return;
    case "scaleOut":
      results.scaleOut = await runScaleOut(options);
      return;
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      only: { type: "string" },
      quick: { type: "boolean", default: false },
      render: { type: "boolean", default: false },
      help: { type: "boolean", default: false },
    },
  });
  if (values.help) {
    console.log(
      `usage: node dist/bench/run.js [--quick] [--only ${SECTION_NAMES.join(",")}] | --render\n` +
        "Writes bench/results/latest.json and docs/BENCHMARKS.md; --only keeps the other sections' last figures;\n" +
        "--render measures nothing: it rechecks the targets and rewrites both files from latest.json.",
    );
    return;
  }
  const root = repoRoot();
  const jsonFile = path.join(root, "bench", "results", "latest.json");
  const markdownFile = path.join(root, "docs", "BENCHMARKS.md");
  if (values.render) {
    const previous = readPrevious(jsonFile);
    if (previous === undefined) throw new Error(`--render needs ${jsonFile} from an earlier run`);
    const results = emptyResults(previous.quick, []);
    Object.assign(results, previous, { sectionsRun: [], errors: previous.errors ?? {} });
    writeResults(results, jsonFile, markdownFile);
    return;
  }
  const quick = values.quick ?? false;
  const sections = parseSections(values.only);
  const results = emptyResults(quick, sections);
  carryOver(results, readPrevious(jsonFile));
  const log = (line: string) => console.error(`[bench] ${line}`);

  for (const section of sections) {
    const started = performance.now();
    // The load when the section started: other processes slow both sides of a ratio, not always equally.
    const loadAverage = Number(os.loadavg()[0].toFixed(2));
    try {
      await measureSection(section, results, { quick, log });
      results.measured[section] = { at: new Date().toISOString(), quick, loadAverage };
    } catch (err) {
      results.errors[section] = errorMessage(err);
      log(`${section} failed: ${results.errors[section]}`);
    }
    log(`${section}: ${((performance.now() - started) / 1000).toFixed(1)} s`);
  }

  results.environment.loadAverage.end = Number(os.loadavg()[0].toFixed(2));
  writeResults(results, jsonFile, markdownFile);
}

/** Checks the targets against the figures, then writes the JSON and the Markdown and prints the tables. */
function writeResults(results: BenchResults, jsonFile: string, markdownFile: string): void {
  results.targets = evaluateTargets(results);
  writeAtomically(jsonFile, `${JSON.stringify(results, null, 2)}\n`);
  writeAtomically(markdownFile, renderMarkdown(results));
  // The README quotes the headline figures between markers; they are rewritten from the same results.
  const readmeFile = path.join(repoRoot(), "README.md");
  const readme = readFileSync(readmeFile, "utf8");
  const updated = withReadmeFigures(readme, results);
  if (updated !== readme) writeAtomically(readmeFile, updated);
  console.log(renderText(results));
  console.log(
    `\nwrote ${path.relative(process.cwd(), jsonFile)} and ${path.relative(process.cwd(), markdownFile)}`,
  );
}

main().then(
  // tfjs and Socket.IO may leave handles open; the results are written, so leave now.
  () => process.exit(0),
  (err: unknown) => {
    console.error(`bench: ${errorMessage(err)}`);
    process.exit(1);
  },
);
