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
