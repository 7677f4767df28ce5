#!/usr/bin/env node
/**
 * The `fedsim` command (package.json "bin"). In an installed package it only starts
 * dist/cli/index.js. In a checkout (the TypeScript sources are beside it) it first makes sure
 * dist/ is built from the current sources, saying so when it builds, so `npx fedsim` and
 * `npm start` never run a stale or half-written build. Plain JavaScript: it runs before anything
 * is built.
 *
 * Why `npx fedsim` needs this: in a checkout, npm 11 links the checkout into its npx cache and
 * runs the package's prepare step (output hidden) before it links the bin; a build there was a
 * long silent wait, and an interrupted one left a cache entry without the bin, which broke every
 * later call. package.json's prepare therefore builds nothing under `npm exec`, and this file
 * builds on first use instead.
 *
 * In a checkout it also builds the native kernels (native/build.mjs) when their addon is missing or older
 * than its sources and the compiler and oneDNN are present: a checkout installed with FEDSIM_SKIP_NATIVE=1,
 * or one whose libdnnl-dev arrived after `npm install`, still trains on the native backend, not on wasm.
 */
import { spawnSync } from "node:child_process";
import { existsSync, readdirSync, realpathSync, statSync } from "node:fs";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const root = path.dirname(path.dirname(realpathSync(fileURLToPath(import.meta.url))));
const cli = path.join(root, "dist", "cli", "index.js");
/** Written by `tsc -b` after every successful build (tsconfig.build.json). */
const stamp = path.join(root, "dist", "tsconfig.build.tsbuildinfo");
const SOURCE_DIRS = ["common", "server", "client", "scenarios", "cli", "bench"];
const nativeBuilder = path.join(root, "native", "build.mjs");
const nativeSources = path.join(root, "native", "src");
const nativeAddon = path.join(root, "native", "build", "fedsim_native.node");
const CONFIG_FILES = ["tsconfig.json", "tsconfig.build.json"];

function newestTypeScript(dir) {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) newest = Math.max(newest, newestTypeScript(full));
    else if (entry.name.endsWith(".ts")) newest = Math.max(newest, statSync(full).mtimeMs);
  }
  return newest;
}

function isCheckout() {
  return existsSync(path.join(root, "cli", "index.ts")) && existsSync(path.join(root, "tsconfig.build.json"));
}

function isStale() {
  if (!existsSync(cli) || !existsSync(stamp)) return true;
  const inputs = Math.max(
    ...SOURCE_DIRS.map((d) => path.join(root, d))
      .filter(existsSync)
      .map(newestTypeScript),
    ...CONFIG_FILES.map((f) => path.join(root, f))
      .filter(existsSync)
      .map((f) => statSync(f).mtimeMs),
  );
  return statSync(stamp).mtimeMs < inputs;
}

function nativeAddonStale() {
  if (!existsSync(nativeBuilder) || !existsSync(nativeSources)) return false;
  if (!existsSync(nativeAddon)) return true;
  const built = statSync(nativeAddon).mtimeMs;
  return readdirSync(nativeSources).some((file) => statSync(path.join(nativeSources, file)).mtimeMs > built);
}

function wantsNativeBuild() {
  const env = process.env;
  // The user chose not to have it, or points at an addon elsewhere.
  if (env.FEDSIM_SKIP_NATIVE === "1" || env.FEDSIM_DISABLE_NATIVE === "1") return false;
  if (env.FEDSIM_NATIVE_ADDON !== undefined && env.FEDSIM_NATIVE_ADDON !== "") return false;
  return nativeAddonStale();
}

// Only in a checkout: an installed package builds its addon when asked (docs/API.md), not on first use.
if (isCheckout() && wantsNativeBuild()) {
  // Without a compiler or oneDNN this builds nothing and says nothing here: the run's backend line says
  // why native was skipped and what to install.
  const { missingPieces } = await import(
    pathToFileURL(path.join(root, "native", "system-packages.mjs")).href
  );
  if (missingPieces().length === 0) {
    process.stderr.write("fedsim: building the native kernels (npm run build:native)…\n");
    // A child process: the build load-tests the new addon, which must not stay loaded in this one. Its
    // output goes to stderr, keeping stdout for the command's own (--json) output.
    spawnSync(process.execPath, [nativeBuilder], { cwd: root, stdio: ["ignore", process.stderr, "inherit"] });
  }
}

if (isCheckout() && isStale()) {
  if (!existsSync(path.join(root, "node_modules", "typescript"))) {
    process.stderr.write(
      `fedsim: dist/ is missing or stale and TypeScript is not installed; run npm install in ${root}\n`,
    );
    process.exit(1);
  }
  process.stderr.write("fedsim: building from the sources changed since the last build (npm run build)…\n");
  // The package's own build script: tsc -b plus the files it copies beside the compiled code.
  const build = spawnSync("npm", ["run", "build", "--silent"], { cwd: root, stdio: "inherit" });
  if (!existsSync(cli)) {
    process.stderr.write(`fedsim: the build failed (exit ${build.status ?? build.signal}); see above\n`);
    process.exit(1);
  }
  // tsc still emits when it reports type errors; the command can run, and the errors are above.
  if (build.status !== 0)
    process.stderr.write("fedsim: the build reported errors (above); running what it emitted\n");
}

await import(pathToFileURL(cli).href);
