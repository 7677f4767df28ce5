#!/usr/bin/env node
/**
 * Builds fedsim's optional native kernels into native/build/fedsim_native.node.
 *
 * A direct g++ build rather than node-gyp: the addon is a handful of small files with one external library, node-gyp
 * would add a Python dependency and a slow configure step on every install, and its make-based
 * up-to-date check does not cover a changed system library. Here the objects are compiled in parallel and
 * everything is skipped when the addon is newer than its sources and was built with the same command.
 *
 * This script must never fail an install: when a compiler, the Node-API headers or oneDNN are missing it
 * prints ONE line saying why the native kernels are unavailable and exits 0. fedsim then trains on wasm.
 * `npm install` runs native/setup.mjs, which installs the missing system packages where it may and then
 * calls buildNative() below.
 *
 * Usage: node native/build.mjs [--force] [--quiet]
 * Environment: FEDSIM_SKIP_NATIVE=1 skips the build; CXX picks the compiler; DNNL_ROOT points at a oneDNN
 * install outside the system paths (DNNL_ROOT/include, DNNL_ROOT/lib).
 */
import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import {
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  realpathSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { createRequire } from "node:module";
import os from "node:os";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { promisify } from "node:util";
import { wasmNotice } from "./notice.mjs";
import { dnnlHeaderDirs } from "./system-packages.mjs";

const run = promisify(execFile);
const here = path.dirname(fileURLToPath(import.meta.url));
const sourceDir = path.join(here, "src");
const buildDir = path.join(here, "build");
const output = path.join(buildDir, "fedsim_native.node");
/** Linked here first; the .node extension lets require() load it for the check. */
const staged = path.join(buildDir, "fedsim_native.staged.node");
const stampFile = path.join(buildDir, "build-command.sha256");

class Unavailable extends Error {}

async function findCompiler() {
  const cxx = process.env.CXX ?? "g++";
  try {
    await run(cxx, ["--version"]);
    return cxx;
  } catch {
    throw new Unavailable(`no C++ compiler (${cxx}); apt-get install g++`);
  }
}

function findNodeHeaders() {
  const candidates = [
    process.env.npm_config_nodedir && path.join(process.env.npm_config_nodedir, "include", "node"),
    path.join(path.dirname(process.execPath), "..", "include", "node"),
    "/usr/include/node",
    "/usr/local/include/node",
  ].filter(Boolean);
  const found = candidates.find((dir) => existsSync(path.join(dir, "node_api.h")));
  if (found === undefined)
    throw new Unavailable(`Node-API headers (node_api.h) not found in ${candidates.join(", ")}`);
  return path.resolve(found);
}

async function findDnnl(cxx) {
  const root = process.env.DNNL_ROOT;
  const include = dnnlHeaderDirs().find((dir) => existsSync(path.join(dir, "oneapi", "dnnl", "dnnl.hpp")));
  if (include === undefined) throw new Unavailable("oneDNN headers not found (apt-get install libdnnl-dev)");
  const libDirs = root ? [path.join(root, "lib"), path.join(root, "lib64")] : [];
  // The compiler knows its own library search path; it echoes the bare name when the library is absent.
  const { stdout } = await run(cxx, [...libDirs.map((dir) => `-L${dir}`), "-print-file-name=libdnnl.so"]);
  const inRoot = libDirs.find((dir) => existsSync(path.join(dir, "libdnnl.so")));
  if (inRoot === undefined && !path.isAbsolute(stdout.trim())) {
    throw new Unavailable("libdnnl.so not found (apt-get install libdnnl-dev)");
  }
  return { include, libDirs };
}

function sources() {
  return readdirSync(sourceDir)
    .filter((file) => file.endsWith(".cc") || file.endsWith(".h"))
    .sort()
    .map((file) => path.join(sourceDir, file));
}

function commandFor(cxx, nodeHeaders, dnnl) {
  // Portable: no -march=native. oneDNN picks its ISA at run time; our loops carry AVX2 clones (target_clones).
  const compile = [
    "-std=c++17",
    "-O3",
    "-fPIC",
    "-fopenmp",
    "-fvisibility=hidden",
    "-DNODE_GYP_MODULE_NAME=fedsim_native",
    `-I${nodeHeaders}`,
    ...(dnnl.include === "/usr/include" ? [] : [`-I${dnnl.include}`]),
  ];
  const rpath = dnnl.libDirs.map((dir) => `-Wl,-rpath,${dir}`);
  const link = ["-shared", "-fopenmp", ...dnnl.libDirs.map((dir) => `-L${dir}`), ...rpath, "-ldnnl"];
  return { cxx, compile, link };
}

function upToDate(stamp, files, force) {
  if (force || !existsSync(output) || !existsSync(stampFile)) return false;
  if (readFileSync(stampFile, "utf8") !== stamp) return false;
  const built = statSync(output).mtimeMs;
  return (
    files.every((file) => statSync(file).mtimeMs <= built) &&
    statSync(fileURLToPath(import.meta.url)).mtimeMs <= built
  );
}

/** Runs jobs with at most `limit` at once. */
async function inParallel(jobs, limit) {
  const pending = [...jobs];
  const workers = Array.from({ length: Math.min(limit, pending.length) }, async () => {
    while (pending.length > 0) await pending.shift()();
  });
  await Promise.all(workers);
}

async function build(force) {
  const cxx = await findCompiler();
  const nodeHeaders = findNodeHeaders();
  const dnnl = await findDnnl(cxx);
  const files = sources();
  const command = commandFor(cxx, nodeHeaders, dnnl);
  const stamp = createHash("sha256").update(JSON.stringify(command)).digest("hex");
  if (upToDate(stamp, files, force)) return { built: false };
  mkdirSync(buildDir, { recursive: true });
  const units = files.filter((file) => file.endsWith(".cc"));
  const objects = units.map((file) => path.join(buildDir, `${path.basename(file, ".cc")}.o`));
  const started = Date.now();
  try {
    await inParallel(
      units.map((file, i) => () => run(cxx, [...command.compile, "-c", file, "-o", objects[i]])),
      os.availableParallelism(),
    );
    // Linked beside the target and renamed over it: a running fedsim that has the old addon mapped keeps
    // its copy intact (writing into a mapped shared library in place can crash that process).
    await run(cxx, [...objects, ...command.link, "-o", staged]);
  } catch (err) {
    const detail =
      String(err.stderr ?? err.message)
        .split("\n")
        .find((line) => line.includes("error")) ?? "";
    throw new Unavailable(`compilation failed: ${detail.trim() || String(err.message).split("\n")[0]}`);
  }
  // A library that links but does not load (wrong architecture, missing libgomp) should be reported now.
  try {
    createRequire(import.meta.url)(staged).info();
  } catch (err) {
    rmSync(staged, { force: true });
    throw new Unavailable(`built, but it does not load: ${String(err.message).split("\n")[0]}`);
  }
  renameSync(staged, output);
  writeFileSync(stampFile, stamp);
  return { built: true, seconds: (Date.now() - started) / 1000 };
}

/**
 * Builds the addon unless it is up to date. Never throws: resolves to { ok: true, built, seconds? } or
 * { ok: false, reason } (one line, with what to install when something is missing).
 */
export async function buildNative({ force = false } = {}) {
  try {
    return { ok: true, ...(await build(force)) };
  } catch (err) {
    const reason =
      err instanceof Unavailable ? err.message : `unexpected error: ${String(err?.message ?? err)}`;
    return { ok: false, reason };
  }
}

/** The line printed after a successful build. */
export function builtLine(result) {
  return result.built
    ? `fedsim native kernels: built native/build/fedsim_native.node in ${result.seconds.toFixed(1)} s`
    : "fedsim native kernels: up to date (native/build/fedsim_native.node)";
}

async function main(argv) {
  const quiet = argv.includes("--quiet");
  if (process.env.FEDSIM_SKIP_NATIVE === "1") {
    if (!quiet)
      console.log("fedsim native kernels: not built (FEDSIM_SKIP_NATIVE=1); fedsim will train on wasm");
    return;
  }
  const result = await buildNative({ force: argv.includes("--force") });
  // A failure is always printed, even with --quiet: the user should learn why training is slower.
  if (!result.ok) console.log(wasmNotice(result.reason));
  else if (!quiet) console.log(builtLine(result));
}

const invokedPath = process.argv[1] === undefined ? "" : path.resolve(process.argv[1]);
if (existsSync(invokedPath) && import.meta.url === pathToFileURL(realpathSync(invokedPath)).href) {
  await main(process.argv.slice(2));
  process.exitCode = 0;
}
