/**
 * Load benchmark: many connected clients, a few rounds, what it costs the coordinator.
 *   node dist/bench/load.js [--clients 1000] [--sampled all|N] [--rounds 3] [--processes 2]
 *   node dist/bench/load.js --preset issues   (1k all sampled; 1k and 10k connected, 10 and 100 sampled)
 * Prints a table per run and merges the runs into bench/results/load.json (keyed by clients and
 * sampled, so separate invocations add up). Exits non-zero when any run had a failure.
 */
import { spawnSync } from "node:child_process";
import { mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { describeEnvironment } from "./environment.js";
import { repoRoot } from "./paths.js";
import { runScript } from "./script.js";
import { type LoadOptions, type LoadResult, openFilesSoftLimit, runLoad } from "./sections/load-run.js";
import { mib } from "./sections/probe.js";

const PRESETS: Record<string, { clients: number; sampled: number | "all" }[]> = {
  issues: [
    { clients: 1000, sampled: "all" },
    { clients: 1000, sampled: 10 },
    { clients: 1000, sampled: 100 },
    { clients: 10_000, sampled: 10 },
    { clients: 10_000, sampled: 100 },
  ],
};

function whole(name: string, raw: string | undefined, fallback: number): number {
  if (raw === undefined) return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < 0)
    throw new Error(`--${name} must be a whole number, got "${raw}"`);
  return value;
}

function parseSampled(raw: string | undefined): number | "all" {
  if (raw === undefined || raw === "all") return "all";
  return whole("sampled", raw, 0);
}

const fmt = (value: number, digits = 2) => value.toFixed(digits);
const kib = (bytes: number) => fmt(bytes / 1024, 1);

export function renderRun(r: LoadResult): string {
  const o = r.options;
  const lines = [
    `${o.clients} clients, ${o.sampled === "all" ? "all" : o.sampled} sampled per round, ${o.processes} host process(es), ${o.model} (${o.params} params), backend ${o.backend}`,
    `  connect: ${r.connected}/${o.clients} admitted in ${fmt(r.connectSeconds, 1)} s (slowest host ${fmt(r.hostConnectSeconds, 1)} s from first to last connection)`,
    `  connect CPU: coordinator ${fmt(r.coordinator.connectCpuSeconds, 1)} s, hosts ${r.hosts.map((h) => fmt(h.connectCpuSeconds, 1)).join(" / ")} s`,
    `  coordinator: RSS ${fmt(mib(r.coordinator.rssBefore), 0)} MiB before clients, ${fmt(mib(r.coordinator.rssConnected), 0)} MiB connected+idle, peak ${fmt(mib(r.coordinator.peakRss), 0)} MiB; heap peak ${fmt(mib(r.coordinator.peakHeap), 0)} MiB (${r.coordinator.memorySamples} samples at 100 ms)`,
    r.perConnection
      ? `  per connection (coordinator): ${kib(r.perConnection.rss)} KiB RSS, ${kib(r.perConnection.heap)} KiB heap`
      : "  per connection: not measured (clients in the coordinator's process)",
    r.perIdleClient
      ? `  per idle virtual client (host): ${kib(r.perIdleClient.rss)} KiB RSS, ${kib(r.perIdleClient.heap)} KiB heap; host peak RSS ${r.hosts.map((h) => `${fmt(mib(h.peakRss), 0)}`).join(" / ")} MiB`
      : "  per idle virtual client: not measured (clients in the coordinator's process)",
    `  failures: ${r.failures.total} (in rounds ${r.failures.inRounds}, client-side errors ${r.failures.clientErrors}, never admitted ${r.failures.notConnected})`,
    ...r.failures.samples.map((s) => `    ${s}`),
    "  round | seconds | coord. CPU s | sampled | ok   | fail | wait ms | configure ms | collecting s | aggregate ms | evaluate ms | train max s",
    ...r.rounds.map(
      (x) =>
        `  ${String(x.round).padStart(5)} | ${fmt(x.seconds).padStart(7)} | ${fmt(x.cpuSeconds).padStart(12)} | ${String(x.sampled).padStart(7)} | ${String(x.participants).padStart(4)} | ${String(x.failures).padStart(4)} | ${fmt((x.phases.WAITING_FOR_CLIENTS ?? 0) * 1000, 1).padStart(7)} | ${fmt((x.phases.CONFIGURE_FIT ?? 0) * 1000, 1).padStart(12)} | ${fmt(x.phases.COLLECTING ?? 0).padStart(12)} | ${fmt((x.phases.AGGREGATING ?? 0) * 1000, 1).padStart(12)} | ${fmt((x.phases.EVALUATING ?? 0) * 1000, 1).padStart(11)} | ${fmt(x.trainSecondsMax, 3).padStart(11)}`,
    ),
  ];
  return lines.join("\n");
}

interface LoadFile {
  schema: 1;
  updatedAt: string;
  environment: ReturnType<typeof describeEnvironment> & { openFilesLimit: number | null };
  runs: Record<string, LoadResult & { command: string; measuredAt: string }>;
}

function save(file: string, result: LoadResult, command: string): void {
  let previous: LoadFile | null = null;
  try {
    const parsed = JSON.parse(readFileSync(file, "utf8")) as LoadFile;
    if (parsed.schema === 1) previous = parsed;
  } catch {
    // No earlier results: start a new file.
  }
  const environment = describeEnvironment();
  environment.loadAverage.end = Number(os.loadavg()[0].toFixed(2));
  const out: LoadFile = {
    schema: 1,
    updatedAt: new Date().toISOString(),
    environment: { ...environment, openFilesLimit: openFilesSoftLimit() },
    runs: { ...(previous?.runs ?? {}) },
  };
  out.runs[`${result.options.clients}/${result.options.sampled}`] = {
    ...result,
    command,
    measuredAt: new Date().toISOString(),
  };
  mkdirSync(path.dirname(file), { recursive: true });
  writeFileSync(`${file}.tmp`, `${JSON.stringify(out, null, 2)}\n`);
  renameSync(`${file}.tmp`, file);
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      clients: { type: "string" },
      sampled: { type: "string" },
      rounds: { type: "string" },
      processes: { type: "string" },
      examples: { type: "string" },
      backend: { type: "string" },
      seed: { type: "string" },
      preset: { type: "string" },
      out: { type: "string" },
      quiet: { type: "boolean", default: false },
      help: { type: "boolean", default: false },
    },
  });
  if (values.help) {
    process.stdout.write(
      "usage: node dist/bench/load.js [--clients 1000] [--sampled all|N] [--rounds 3] [--processes 2]\n" +
        "       [--examples 8] [--backend cpu|wasm] [--seed 1] [--preset issues] [--out FILE]\n",
    );
    return;
  }
  const backend = values.backend ?? "cpu";
  if (backend !== "cpu" && backend !== "wasm")
    throw new Error(`--backend must be cpu or wasm, got "${backend}"`);
  const common: Omit<LoadOptions, "clients" | "sampled"> = {
    rounds: whole("rounds", values.rounds, 3),
    processes: whole("processes", values.processes, 2),
    examplesPerClient: whole("examples", values.examples, 8),
    backend,
    seed: whole("seed", values.seed, 1),
    ...(values.quiet ? {} : { log: (line: string) => process.stderr.write(`[load] ${line}\n`) }),
  };
  if (values.preset !== undefined) {
    const preset = PRESETS[values.preset];
    if (!preset) throw new Error(`--preset must be one of ${Object.keys(PRESETS).join(", ")}`);
    // One process per run: RSS never shrinks, so a run after another would start from its peak.
    const passOn = process.argv
      .slice(2)
      .filter((a, i, all) => a !== "--preset" && all[i - 1] !== "--preset" && !a.startsWith("--preset="));
    let failed = 0;
    for (const run of preset) {
      const child = spawnSync(
        process.execPath,
        [
          fileURLToPath(import.meta.url),
          ...passOn,
          "--clients",
          String(run.clients),
          "--sampled",
          String(run.sampled),
        ],
        { stdio: "inherit" },
      );
      if (child.status !== 0) failed++;
    }
    if (failed > 0) process.exitCode = 1;
    return;
  }
  const run = { clients: whole("clients", values.clients, 1000), sampled: parseSampled(values.sampled) };
  const file = values.out ?? path.join(repoRoot(), "bench", "results", "load.json");
  const command = ["node", "dist/bench/load.js", ...process.argv.slice(2)].join(" ");
  const result = await runLoad({ ...common, ...run });
  process.stdout.write(`${renderRun(result)}\n`);
  save(file, result, command);
  process.stdout.write(`wrote ${path.relative(process.cwd(), file)}\n\n`);
  if (result.failures.total > 0) process.exitCode = 1;
}

runScript("load", main);
