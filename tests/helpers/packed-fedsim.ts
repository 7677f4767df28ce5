import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, readdir, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { ensureBuilt, ROOT } from "./built-cli.js";

export interface Ran {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a command to completion, collecting its output (no shell). */
export function run(
  command: string,
  args: readonly string[],
  cwd: string,
  env: NodeJS.ProcessEnv = {},
): Promise<Ran> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, {
      cwd,
      env: { ...process.env, ...env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (c) => {
      stdout += c;
    });
    child.stderr.on("data", (c) => {
      stderr += c;
    });
    child.once("error", reject);
    child.once("close", (code) => resolve({ code, stdout, stderr }));
  });
}

/** Throws with the command's output when it failed, so a test failure says why. */
export function expectSuccess(ran: Ran, what: string): Ran {
  if (ran.code !== 0) {
    throw new Error(`${what} exited with ${ran.code}\n--- stdout\n${ran.stdout}\n--- stderr\n${ran.stderr}`);
  }
  return ran;
}

const npm = process.platform === "win32" ? "npm.cmd" : "npm";

/**
 * fedsim packed as a user would receive it, once per test file. `npm pack` runs the `prepare`
 * script (a full `tsc` build plus the native build check, tens of seconds); here dist/ is brought
 * up to date by ensureBuilt, as every CLI test does, and packed with --ignore-scripts, so a test
 * never rewrites dist/ under another test file that is forking the CLI from it.
 */
export async function packFedsim(): Promise<{ tarball: string; workDir: string }> {
  await ensureBuilt();
  const workDir = await mkdtemp(path.join(os.tmpdir(), "fedsim-pack-"));
  expectSuccess(
    await run(npm, ["pack", "--ignore-scripts", "--silent", "--pack-destination", workDir], ROOT),
    "npm pack",
  );
  const tarball = (await readdir(workDir)).find((f) => f.endsWith(".tgz"));
  if (!tarball) throw new Error(`npm pack wrote no tarball into ${workDir}`);
  return { tarball: path.join(workDir, tarball), workDir };
}

/**
 * `npm install` in a project outside this repository, without a network: its node_modules starts
 * as a hard-linked copy of this repository's (fedsim's dependencies, typescript, @types/node), so
 * npm finds every dependency of the tarball already in place, installs the tarball itself, and
 * prunes the rest. Two files are never shared with the repository: npm rewrites its hidden
 * lockfile in place, and --ignore-scripts keeps install scripts from building inside shared
 * package folders.
 */
export async function installOffline(projectDir: string, ...packages: string[]): Promise<void> {
  const modules = path.join(projectDir, "node_modules");
  if (!existsSync(modules)) {
    const linked = await run("cp", ["-al", path.join(ROOT, "node_modules"), modules], projectDir);
    // Another filesystem than the repository's: a real copy, slower but equivalent.
    if (linked.code !== 0) {
      await rm(modules, { recursive: true, force: true });
      expectSuccess(await run("cp", ["-R", path.join(ROOT, "node_modules"), modules], projectDir), "cp");
    }
    await rm(path.join(modules, ".package-lock.json"), { force: true });
    await rm(path.join(modules, "fedsim"), { recursive: true, force: true });
  }
  expectSuccess(
    await run(
      npm,
      [
        "install",
        "--offline",
        "--no-audit",
        "--no-fund",
        "--ignore-scripts",
        "--loglevel=error",
        ...packages,
      ],
      projectDir,
    ),
    `npm install ${packages.join(" ")}`,
  );
}

/** The TypeScript compiler installed in a project. */
export function tscIn(projectDir: string): string {
  return path.join(projectDir, "node_modules", "typescript", "bin", "tsc");
}
