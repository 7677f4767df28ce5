/**
 * The system packages the native kernels need (a C++ compiler and oneDNN), and installing them with
 * apt-get on Debian and Ubuntu when this process may: as root, or through `sudo -n` (a password prompt
 * is never shown, since `npm install` must not stop and wait). Everyone else gets the exact command.
 *
 * `planSystemPackages` decides, from facts gathered by `gatherFacts`, and does nothing itself, so every
 * branch is tested without a package manager (tests/native-setup.test.ts). `installSystemPackages` runs
 * the plan with a time limit and no terminal input, and reports failure instead of throwing.
 */
import { spawn } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import path from "node:path";

/** Debian's package for each missing piece. */
export const APT_PACKAGES = { compiler: "g++", dnnl: "libdnnl-dev" };

/** Where build.mjs looks for oneDNN's headers (DNNL_ROOT first). */
export function dnnlHeaderDirs(env = process.env) {
  const root = env.DNNL_ROOT;
  return [root && path.join(root, "include"), "/usr/include", "/usr/local/include"].filter(Boolean);
}

function onPath(command, env) {
  if (command.includes("/")) return existsSync(command);
  return (env.PATH ?? "")
    .split(path.delimiter)
    .some((dir) => dir !== "" && existsSync(path.join(dir, command)));
}

/** Which of the compiler and oneDNN's headers are missing here. */
export function missingPieces(env = process.env) {
  const missing = [];
  if (!onPath(env.CXX ?? "g++", env)) missing.push("compiler");
  if (!dnnlHeaderDirs(env).some((dir) => existsSync(path.join(dir, "oneapi", "dnnl", "dnnl.hpp")))) {
    missing.push("dnnl");
  }
  return missing;
}

/** ID and ID_LIKE of /etc/os-release, lower-cased, e.g. ["ubuntu", "debian"]. */
export function osFamilies(text) {
  const families = [];
  for (const line of text.split("\n")) {
    const match = /^(ID|ID_LIKE)=(.*)$/.exec(line.trim());
    if (match === null) continue;
    families.push(...match[2].replace(/["']/g, "").toLowerCase().split(/\s+/).filter(Boolean));
  }
  return families;
}

function readOsRelease() {
  for (const file of ["/etc/os-release", "/usr/lib/os-release"]) {
    try {
      return readFileSync(file, "utf8");
    } catch {
      // Try the next location.
    }
  }
  return "";
}

/**
 * Runs a command with no input and a time limit; resolves to its exit status, its output's tail and
 * whether it was stopped; never rejects.
 */
export function runQuietly(command, args, { timeoutMs, env = process.env } = {}) {
  return new Promise((resolve) => {
    let output = "";
    let done = false;
    let timer;
    const finish = (status, timedOut) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      resolve({ status, output, timedOut });
    };
    let child;
    try {
      child = spawn(command, args, { stdio: ["ignore", "pipe", "pipe"], env });
    } catch (err) {
      output = String(err?.message ?? err);
      finish(null, false);
      return;
    }
    const collect = (chunk) => {
      output = (output + chunk).slice(-16_384);
    };
    child.stdout.on("data", collect);
    child.stderr.on("data", collect);
    // Resolved at once, not on "close": a grandchild (dpkg) may hold the pipes open after the kill.
    timer = setTimeout(() => {
      output += `\n(stopped after ${timeoutMs / 1000} s)`;
      child.kill("SIGTERM");
      finish(null, true);
    }, timeoutMs);
    child.on("error", (err) => {
      output += String(err.message);
      finish(null, false);
    });
    child.on("close", (status) => finish(status, false));
  });
}

/** What planSystemPackages needs to know about this machine. */
export async function gatherFacts(env = process.env) {
  const missing = missingPieces(env);
  const facts = {
    platform: process.platform,
    osFamilies: process.platform === "linux" ? osFamilies(readOsRelease()) : [],
    hasAptGet: onPath("apt-get", env),
    isRoot: typeof process.getuid === "function" && process.getuid() === 0,
    canSudo: false,
    missing,
    optOut: env.FEDSIM_NO_APT === "1",
    npmCommand: env.npm_command,
  };
  if (missing.length > 0 && !facts.isRoot && facts.hasAptGet && onPath("sudo", env)) {
    // -n: fail at once instead of asking for a password.
    facts.canSudo = (await runQuietly("sudo", ["-n", "true"], { timeoutMs: 5000, env })).status === 0;
  }
  return facts;
}

/** npm commands whose prepare step must not change the system: packing and publishing build a tarball. */
const NO_INSTALL_COMMANDS = new Set(["pack", "publish"]);

/**
 * What to do about missing packages:
 * - { action: "none" } when nothing is missing;
 * - { action: "install", packages, sudo, command } when apt-get may install them here;
 * - { action: "notice", reason, remedy } otherwise, with the command that would.
 */
export function planSystemPackages(facts) {
  if (facts.missing.length === 0) return { action: "none" };
  const packages = facts.missing.map((piece) => APT_PACKAGES[piece]);
  const reason = facts.missing
    .map((piece) => (piece === "compiler" ? "no C++ compiler" : "oneDNN not installed"))
    .join(", ");
  const debian = facts.osFamilies.includes("debian") || facts.osFamilies.includes("ubuntu");
  if (facts.platform !== "linux") {
    return {
      action: "notice",
      reason: `the native kernels build on Linux only, this is ${facts.platform}`,
      remedy: "on Linux: a C++ compiler and oneDNN, then npm run build:native",
    };
  }
  if (!debian || !facts.hasAptGet) {
    return {
      action: "notice",
      reason,
      remedy:
        "install g++ and oneDNN (headers and libdnnl.so; DNNL_ROOT=<prefix> if not in /usr), then npm run build:native",
    };
  }
  const command = `sudo apt-get install -y ${packages.join(" ")} && npm run build:native`;
  if (facts.optOut) return { action: "notice", reason: `${reason}; FEDSIM_NO_APT=1`, remedy: command };
  if (NO_INSTALL_COMMANDS.has(facts.npmCommand)) {
    return {
      action: "notice",
      reason: `${reason}; npm ${facts.npmCommand} installs nothing`,
      remedy: command,
    };
  }
  if (facts.isRoot || facts.canSudo) {
    return { action: "install", packages, sudo: !facts.isRoot, command };
  }
  return { action: "notice", reason: `${reason}, and installing it needs root`, remedy: command };
}

/** Long enough for a slow mirror; a stuck apt-get must still not hold `npm install` forever. */
const APT_TIMEOUT_MS = 10 * 60 * 1000;

function aptArgs(plan, args) {
  const aptGet = ["apt-get", "-q", "-o", "DPkg::Lock::Timeout=60", ...args];
  // sudo resets the environment, so the non-interactive frontend is passed through env.
  return plan.sudo
    ? { command: "sudo", args: ["-n", "env", "DEBIAN_FRONTEND=noninteractive", ...aptGet] }
    : { command: aptGet[0], args: aptGet.slice(1) };
}

function lastLines(text, count) {
  return text.trim().split("\n").slice(-count).join(" | ");
}

/**
 * Installs plan.packages. A fresh container has no package lists, so a failed install is retried once
 * after `apt-get update`. Each apt-get call is stopped after `timeoutMs`. Resolves to { ok: true } or
 * { ok: false, detail }.
 */
export async function installSystemPackages(plan, env = process.env, timeoutMs = APT_TIMEOUT_MS) {
  const childEnv = { ...env, DEBIAN_FRONTEND: "noninteractive" };
  const install = aptArgs(plan, ["install", "-y", "--no-install-recommends", ...plan.packages]);
  const first = await runQuietly(install.command, install.args, { timeoutMs, env: childEnv });
  if (first.status === 0) return { ok: true };
  // A stuck apt-get (a held lock, a dead mirror) is not worth a second wait.
  if (first.timedOut) return { ok: false, detail: lastLines(first.output, 2) };
  const update = aptArgs(plan, ["update"]);
  const updated = await runQuietly(update.command, update.args, { timeoutMs, env: childEnv });
  if (updated.status !== 0) return { ok: false, detail: lastLines(first.output, 2) };
  const second = await runQuietly(install.command, install.args, { timeoutMs, env: childEnv });
  return second.status === 0 ? { ok: true } : { ok: false, detail: lastLines(second.output, 2) };
}
