import { spawn } from "node:child_process";
import { existsSync, readdirSync, statSync } from "node:fs";
import path from "node:path";

/** The compiled CLI, as users (and forked pools) run it. */
export const ROOT = path.resolve(import.meta.dirname, "..", "..");
export const CLI = path.join(ROOT, "dist", "cli", "index.js");
/** Rewritten by every `tsc -b` (incremental): unchanged outputs keep their old times. */
const BUILD_STAMP = path.join(ROOT, "dist", "tsconfig.build.tsbuildinfo");
const SOURCE_DIRS = ["common", "server", "client", "scenarios", "cli", "bench"];

function newestSourceTime(dir: string): number {
  if (!existsSync(dir)) return 0;
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) newest = Math.max(newest, newestSourceTime(full));
    // The dashboard's page files are copied into dist by the build, so they count too.
    else if (/\.(ts|js|html|css)$/.test(entry.name)) newest = Math.max(newest, statSync(full).mtimeMs);
  }
  return newest;
}

/** Builds dist/ when it is missing or older than any source file. */
export async function ensureBuilt(): Promise<void> {
  const sources = Math.max(...SOURCE_DIRS.map((d) => newestSourceTime(path.join(ROOT, d))));
  const fresh = () => existsSync(CLI) && existsSync(BUILD_STAMP) && statSync(BUILD_STAMP).mtimeMs >= sources;
  if (fresh()) return;
  const npm = process.platform === "win32" ? "npm.cmd" : "npm";
  const build = spawn(npm, ["run", "build", "--silent"], { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] });
  let output = "";
  build.stdout.on("data", (c) => {
    output += c;
  });
  build.stderr.on("data", (c) => {
    output += c;
  });
  const code = await new Promise<number | null>((resolve) => build.once("close", resolve));
  // tsc still emits when a file elsewhere has a type error; what matters here is a fresh CLI.
  if (!fresh()) {
    throw new Error(`npm run build failed (exit ${code}):\n${output}`);
  }
}
