/**
 * How long the README's first command takes on a fresh checkout: `git clone` of this repository's HEAD into
 * a temporary directory, then `npm install && npm start` there with an empty npm cache (every package comes
 * from the registry, as on a fresh machine). Writes bench/results/first-command.json; the README quotes it.
 *
 *   node dist/bench/first-command.js [--apt] [--warm-cache] [--out FILE]
 *
 * The system packages are part of the first command on a fresh Debian machine (native/setup.mjs installs
 * them), but on a machine that has them that step is a no-op. --apt measures it separately, without
 * touching the installed system: apt-get downloads libdnnl-dev and g++ with everything they pull into a
 * scratch archive directory, computed against a minimal Debian (the installed packages of priority
 * "required" and their dependencies), and the downloaded packages are unpacked into a scratch directory.
 * Their configure scripts are not run, so that part of an install is not measured.
 */
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { cpuFlags } from "./environment.js";
import { repoRoot } from "./paths.js";

interface Step {
  command: string;
  seconds: number;
  status: number | null;
  /** The lines of its output that say what happened (native kernels, backend, result). */
  said: string[];
}

const SAID = /fedsim native kernels|^backend: |^fedsim:|accuracy|added \d+ packages|install-scripts\s+\S+@/;

function timed(command: string, args: string[], cwd: string, env: NodeJS.ProcessEnv): Step {
  const started = performance.now();
  const result = spawnSync(command, args, { cwd, env, encoding: "utf8", maxBuffer: 64 * 2 ** 20 });
  const seconds = (performance.now() - started) / 1000;
  const output = `${result.stdout ?? ""}\n${result.stderr ?? ""}`;
  const said = output
    .split("\n")
    .map((line) => line.trim())
    .filter((line) => SAID.test(line));
  return {
    command: [command, ...args].join(" "),
    seconds: Number(seconds.toFixed(1)),
    status: result.status,
    said,
  };
}

function mustSucceed(step: Step): void {
  if (step.status !== 0) {
    throw new Error(`${step.command} exited with ${step.status}:\n${step.said.join("\n")}`);
  }
}

/** A dpkg status file holding a minimal Debian: the "required" and essential packages and their dependencies. */
function minimalStatus(file: string): number {
  const blocks = readFileSync("/var/lib/dpkg/status", "utf8")
    .split("\n\n")
    .filter((block) => block.trim() !== "");
  const byName = new Map<string, string>();
  for (const block of blocks) {
    const name = /^Package: (\S+)$/m.exec(block)?.[1];
    if (name !== undefined) byName.set(name, block);
  }
  const dependencies = (block: string): string[] =>
    ["Depends", "Pre-Depends"].flatMap((field) => {
      const value = new RegExp(`^${field}: (.*)$`, "m").exec(block)?.[1];
      if (value === undefined) return [];
      // For each dependency, the first alternative that is installed.
      return value.split(",").flatMap((alternatives) => {
        const names = alternatives.split("|").map((a) => a.trim().replace(/[\s(:].*$/, ""));
        const found = names.find((n) => byName.has(n));
        return found === undefined ? [] : [found];
      });
    });
  const keep = new Set<string>();
  const todo = [...byName]
    .filter(([, block]) => /^Priority: required$/m.test(block) || /^Essential: yes$/m.test(block))
    .map(([name]) => name);
  for (let name = todo.pop(); name !== undefined; name = todo.pop()) {
    if (keep.has(name)) continue;
    keep.add(name);
    todo.push(...dependencies(byName.get(name) as string));
  }
  writeFileSync(file, `${[...keep].map((name) => byName.get(name)).join("\n\n")}\n\n`);
  return keep.size;
}

function measureApt(scratch: string): Record<string, unknown> {
  const status = path.join(scratch, "minimal-status");
  const archives = path.join(scratch, "apt-archives");
  const unpacked = path.join(scratch, "apt-unpacked");
  mkdirSync(path.join(archives, "partial"), { recursive: true });
  mkdirSync(unpacked);
  const minimalPackages = minimalStatus(status);
  const packages = ["libdnnl-dev", "g++"];
  const download = timed(
    "apt-get",
    [
      "install",
      "--download-only",
      "-y",
      "--no-install-recommends",
      "-o",
      `Dir::State::status=${status}`,
      "-o",
      `Dir::Cache::archives=${archives}`,
      ...packages,
    ],
    scratch,
    { ...process.env, DEBIAN_FRONTEND: "noninteractive" },
  );
  mustSucceed(download);
  const debs = readdirSync(archives).filter((file) => file.endsWith(".deb"));
  const bytes = debs.reduce((sum, file) => sum + statSync(path.join(archives, file)).size, 0);
  const started = performance.now();
  for (const deb of debs) {
    const step = timed("dpkg-deb", ["-x", path.join(archives, deb), unpacked], scratch, process.env);
    mustSucceed(step);
  }
  const unpackSeconds = (performance.now() - started) / 1000;
  return {
    packages,
    against: `a minimal Debian: the ${minimalPackages} installed packages of priority required, essential ones and their dependencies`,
    debs: debs.length,
    downloadMB: Number((bytes / 1e6).toFixed(1)),
    downloadSeconds: download.seconds,
    unpackSeconds: Number(unpackSeconds.toFixed(1)),
    notMeasured: "the packages' configure scripts (dpkg --configure): they would change this machine",
  };
}

function main(): void {
  const { values } = parseArgs({
    options: {
      apt: { type: "boolean", default: false },
      "warm-cache": { type: "boolean", default: false },
      out: { type: "string" },
    },
  });
  const root = repoRoot();
  const out = values.out ?? path.join(root, "bench", "results", "first-command.json");
  const scratch = mkdtempSync(path.join(os.tmpdir(), "fedsim-first-command-"));
  const checkout = path.join(scratch, "fedsim");
  // A fresh machine's npm cache is empty; --warm-cache keeps this machine's.
  const env: NodeJS.ProcessEnv = { ...process.env };
  if (!values["warm-cache"]) env["npm_config_cache"] = path.join(scratch, "npm-cache");
  for (const name of [
    "FEDSIM_SKIP_NATIVE",
    "FEDSIM_DISABLE_NATIVE",
    "FEDSIM_NATIVE_ADDON",
    "FEDSIM_NO_APT",
  ]) {
    delete env[name];
  }
  const loadStart = os.loadavg()[0];
  try {
    const commit = spawnSync("git", ["rev-parse", "HEAD"], { cwd: root, encoding: "utf8" }).stdout.trim();
    const clone = timed("git", ["clone", "--quiet", root, checkout], scratch, env);
    mustSucceed(clone);
    const install = timed("npm", ["install", "--no-audit", "--no-fund"], checkout, env);
    mustSucceed(install);
    const start = timed("npm", ["start"], checkout, env);
    mustSucceed(start);
    const backend = start.said.find((line) => line.startsWith("backend: "));
    const results = {
      note: "Written by `node dist/bench/first-command.js`: a fresh clone of this repository, then the README's first command, `npm install && npm start`, timed.",
      measuredAt: new Date().toISOString(),
      commit,
      npmCache: values["warm-cache"]
        ? "this machine's (warm)"
        : "empty (every package downloaded from the registry)",
      firstCommandSeconds: Number((install.seconds + start.seconds).toFixed(1)),
      nativeBackend: backend?.startsWith("backend: native") ?? false,
      steps: { install, start },
      systemPackages: values.apt ? measureApt(scratch) : null,
      environment: {
        node: process.version,
        npm: spawnSync("npm", ["--version"], { encoding: "utf8" }).stdout.trim(),
        os: /^PRETTY_NAME="?([^"\n]*)/m.exec(readFileSync("/etc/os-release", "utf8"))?.[1] ?? os.platform(),
        cpuModel: os.cpus()[0]?.model.trim() ?? "unknown",
        cores: os.availableParallelism(),
        avx512f: cpuFlags().avx512f,
        loadAverage: { start: Number(loadStart.toFixed(2)), end: Number(os.loadavg()[0].toFixed(2)) },
      },
    };
    writeFileSync(out, `${JSON.stringify(results, null, 2)}\n`);
    console.log(
      `first command: ${results.firstCommandSeconds} s (npm install ${install.seconds} s, npm start ${start.seconds} s), backend ${backend ?? "unknown"}; wrote ${path.relative(root, out)}`,
    );
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
}

main();
