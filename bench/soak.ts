/**
 * Soak benchmark: a small federation for many rounds, probed between rounds for leaks.
 *   node dist/bench/soak.js [--rounds 200] [--clients 10] [--warmup 20] [--rss-limit 0.10]
 * Prints first / at-warm-up / last / max of every series and the checks, writes
 * bench/results/soak.json, and exits non-zero when a check fails.
 */
import { mkdirSync, renameSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { describeEnvironment } from "./environment.js";
import { repoRoot } from "./paths.js";
import { runScript } from "./script.js";
import { mib } from "./sections/probe.js";
import { runSoak, type SoakResult } from "./sections/soak-run.js";

function numberFlag(name: string, raw: string | undefined): number | undefined {
  if (raw === undefined) return undefined;
  const value = Number(raw);
  if (!Number.isFinite(value) || value < 0) throw new Error(`--${name} must be a number ≥ 0, got "${raw}"`);
  return value;
}

export function renderSoak(r: SoakResult): string {
  const bytes = new Set(["rss", "heapUsed"]);
  const show = (metric: string, v: number) => (bytes.has(metric) ? `${mib(v).toFixed(1)} MiB` : String(v));
  const o = r.options;
  const lines = [
    `${o.rounds} rounds, ${o.clients} clients (in this process with the coordinator), ${o.model}, backend ${o.backend}, ${r.seconds.toFixed(0)} s`,
    `round failures ${r.roundFailures}, client-side errors ${r.clientErrors}`,
    "metric          | first        | after warm-up | last         | max",
    ...Object.entries(r.summary).map(
      ([metric, s]) =>
        `${metric.padEnd(15)} | ${show(metric, s.first).padEnd(12)} | ${show(metric, s.atWarmup).padEnd(13)} | ${show(metric, s.last).padEnd(12)} | ${show(metric, s.max)}`,
    ),
    "",
    ...r.checks.map((c) => `${c.ok ? "PASS" : "FAIL"}  ${c.name}: ${c.detail}`),
  ];
  return lines.join("\n");
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      rounds: { type: "string" },
      clients: { type: "string" },
      warmup: { type: "string" },
      "rss-limit": { type: "string" },
      backend: { type: "string" },
      out: { type: "string" },
      help: { type: "boolean", default: false },
    },
  });
  if (values.help) {
    process.stdout.write(
      "usage: node dist/bench/soak.js [--rounds 200] [--clients 10] [--warmup 20] [--rss-limit 0.10] [--backend cpu|wasm] [--out FILE]\n",
    );
    return;
  }
  const backend = values.backend ?? "cpu";
  if (backend !== "cpu" && backend !== "wasm")
    throw new Error(`--backend must be cpu or wasm, got "${backend}"`);
  const rounds = numberFlag("rounds", values.rounds);
  const clients = numberFlag("clients", values.clients);
  const warmupRounds = numberFlag("warmup", values.warmup);
  const rssGrowthLimit = numberFlag("rss-limit", values["rss-limit"]);
  const loadStart = Number(os.loadavg()[0].toFixed(2));
  const result = await runSoak({
    backend,
    ...(rounds !== undefined ? { rounds } : {}),
    ...(clients !== undefined ? { clients } : {}),
    ...(warmupRounds !== undefined ? { warmupRounds } : {}),
    ...(rssGrowthLimit !== undefined ? { rssGrowthLimit } : {}),
    log: (line) => process.stderr.write(`[soak] ${line}\n`),
  });
  process.stdout.write(`${renderSoak(result)}\n`);
  const file = values.out ?? path.join(repoRoot(), "bench", "results", "soak.json");
  const environment = describeEnvironment();
  environment.loadAverage = { start: loadStart, end: Number(os.loadavg()[0].toFixed(2)) };
  const out = {
    schema: 1,
    generatedAt: new Date().toISOString(),
    command: ["node", "dist/bench/soak.js", ...process.argv.slice(2)].join(" "),
    environment,
    ...result,
  };
  mkdirSync(path.dirname(file), { recursive: true });
  writeFileSync(`${file}.tmp`, `${JSON.stringify(out, null, 2)}\n`);
  renameSync(`${file}.tmp`, file);
  process.stdout.write(`wrote ${path.relative(process.cwd(), file)}\n`);
  if (!result.ok || result.roundFailures > 0 || result.clientErrors > 0) process.exitCode = 1;
}

runScript("soak", main);
