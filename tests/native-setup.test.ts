/**
 * The native kernels' install step (native/setup.mjs, run by `npm install`): which system packages it
 * installs and how, the one-line notice everyone else gets, and that apt-get failures, stuck apt-gets and
 * missing tools end in that notice with exit status 0. apt-get and sudo are stand-in scripts on PATH.
 */
import { spawn } from "node:child_process";
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { nativeOverWasm, wasmNotice } from "../native/notice.mjs";
import {
  type Facts,
  installSystemPackages,
  osFamilies,
  planSystemPackages,
} from "../native/system-packages.mjs";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const scratch = mkdtempSync(path.join(tmpdir(), "fedsim-native-setup-"));

afterAll(() => {
  rmSync(scratch, { recursive: true, force: true });
});

const debianRoot: Facts = {
  platform: "linux",
  osFamilies: ["debian"],
  hasAptGet: true,
  isRoot: true,
  canSudo: false,
  missing: ["compiler", "dnnl"],
  optOut: false,
  npmCommand: "install",
};

describe("planSystemPackages", () => {
  it("does nothing when the compiler and oneDNN are present", () => {
    expect(planSystemPackages({ ...debianRoot, missing: [] })).toEqual({ action: "none" });
  });

  it("installs only the missing packages with apt-get as root on Debian, and with sudo -n on Ubuntu", () => {
    expect(planSystemPackages(debianRoot)).toMatchObject({
      action: "install",
      packages: ["g++", "libdnnl-dev"],
      sudo: false,
    });
    const ubuntuUser = {
      ...debianRoot,
      osFamilies: ["ubuntu", "debian"],
      isRoot: false,
      canSudo: true,
      missing: ["dnnl" as const],
      npmCommand: "ci",
    };
    expect(planSystemPackages(ubuntuUser)).toMatchObject({
      action: "install",
      packages: ["libdnnl-dev"],
      sudo: true,
    });
  });

  it("gives a Debian user without root or sudo the exact command", () => {
    const plan = planSystemPackages({ ...debianRoot, isRoot: false, canSudo: false });
    expect(plan).toEqual({
      action: "notice",
      reason: "no C++ compiler, oneDNN not installed, and installing it needs root",
      remedy: "sudo apt-get install -y g++ libdnnl-dev && npm run build:native",
    });
  });

  it("installs nothing when told not to, or while npm packs or publishes", () => {
    expect(planSystemPackages({ ...debianRoot, optOut: true })).toMatchObject({
      action: "notice",
      reason: expect.stringContaining("FEDSIM_NO_APT=1"),
    });
    for (const npmCommand of ["pack", "publish"]) {
      expect(planSystemPackages({ ...debianRoot, npmCommand })).toMatchObject({ action: "notice" });
    }
  });

  it("tells other systems what to install instead of running a package manager", () => {
    const fedora = planSystemPackages({ ...debianRoot, osFamilies: ["fedora"], hasAptGet: false });
    expect(fedora).toMatchObject({
      action: "notice",
      remedy: expect.stringContaining("npm run build:native"),
    });
    const mac = planSystemPackages({ ...debianRoot, platform: "darwin", osFamilies: [] });
    expect(mac).toMatchObject({ action: "notice", reason: expect.stringContaining("Linux only") });
  });

  it("reads the distribution and its parents from os-release", () => {
    const ubuntu = 'NAME="Ubuntu"\nID=ubuntu\nID_LIKE=debian\nVERSION_ID="24.04"\n';
    expect(osFamilies(ubuntu)).toEqual(["ubuntu", "debian"]);
    expect(osFamilies('ID="rhel"\nID_LIKE="fedora centos"\n')).toEqual(["rhel", "fedora", "centos"]);
  });
});

describe("the notice", () => {
  const results = {
    training: [
      { model: "mnist-2nn", batch: 10, backend: "native", examplesPerSec: 1000 },
      { model: "mnist-2nn", batch: 10, backend: "wasm", examplesPerSec: 250 },
      { model: "mnist-cnn", batch: 50, backend: "native", examplesPerSec: 120 },
      { model: "mnist-cnn", batch: 50, backend: "wasm", examplesPerSec: 10 },
      { model: "mnist-cnn", batch: 10, backend: "native", examplesPerSec: 100 },
      { model: "mnist-cnn", batch: 10, backend: "wasm", examplesPerSec: null },
    ],
  };

  it("takes native ÷ wasm from the cases the results measured both ways", () => {
    expect(nativeOverWasm(results)).toEqual([4, 12]);
    expect(nativeOverWasm({ training: null })).toBeUndefined();
  });

  it("is one line saying what training falls back to, how much slower, and the command", () => {
    const file = path.join(scratch, "latest.json");
    writeFileSync(file, JSON.stringify(results));
    const line = wasmNotice("oneDNN not installed", "sudo apt-get install -y libdnnl-dev", file);
    expect(line).not.toContain("\n");
    expect(line).toContain("fedsim will train on wasm, 4–12× slower");
    expect(line).toContain("to get them: sudo apt-get install -y libdnnl-dev");
    // An installed package ships no results: the cost is said in words.
    expect(wasmNotice("x", undefined, path.join(scratch, "absent.json"))).toContain("several times slower");
  });
});

/** A directory of stand-in commands, first on PATH. */
function fakeTools(name: string, tools: Record<string, string>): { env: NodeJS.ProcessEnv; log: string } {
  const dir = path.join(scratch, name);
  const log = path.join(dir, "calls.log");
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  for (const [tool, body] of Object.entries(tools)) {
    const file = path.join(dir, tool);
    writeFileSync(file, `#!/bin/sh\necho "${tool} $*" >> "${log}"\n${body}\n`, { flag: "w" });
    chmodSync(file, 0o755);
  }
  writeFileSync(log, "");
  return { env: { ...process.env, PATH: `${dir}${path.delimiter}${process.env.PATH}` }, log };
}

describe("installSystemPackages", () => {
  it("updates the package lists and retries once when the first install cannot find the package", async () => {
    const { env, log } = fakeTools("lists", {
      // Fails until `apt-get update` has run, like a fresh container.
      "apt-get": `case "$*" in *update*) touch "$(dirname "$0")/updated"; exit 0;; esac
[ -f "$(dirname "$0")/updated" ] || { echo "E: Unable to locate package libdnnl-dev" >&2; exit 100; }
[ "$DEBIAN_FRONTEND" = noninteractive ] || exit 3`,
    });
    const result = await installSystemPackages({ packages: ["libdnnl-dev"], sudo: false }, env);
    expect(result).toEqual({ ok: true });
    const calls = readFileSync(log, "utf8").trim().split("\n");
    expect(calls).toHaveLength(3);
    expect(calls[0]).toMatch(/^apt-get .*install -y --no-install-recommends libdnnl-dev$/);
    expect(calls[1]).toMatch(/^apt-get .*update$/);
  });

  it("goes through sudo -n, passing the non-interactive frontend, and reports apt-get's error", async () => {
    const { env, log } = fakeTools("sudo", {
      sudo: '[ "$1" = -n ] && shift; exec "$@"',
      "apt-get": 'echo "E: Package libdnnl-dev has no installation candidate" >&2; exit 100',
    });
    const result = await installSystemPackages({ packages: ["libdnnl-dev"], sudo: true }, env);
    expect(result).toEqual({ ok: false, detail: expect.stringContaining("no installation candidate") });
    expect(readFileSync(log, "utf8")).toMatch(/^sudo -n env DEBIAN_FRONTEND=noninteractive apt-get /);
  });

  it("stops an apt-get that does not finish and does not wait for it again", async () => {
    const { env, log } = fakeTools("stuck", { "apt-get": "exec sleep 600" });
    const result = await installSystemPackages({ packages: ["g++"], sudo: false }, env, 300);
    expect(result).toEqual({ ok: false, detail: expect.stringContaining("stopped after") });
    expect(readFileSync(log, "utf8").trim().split("\n")).toHaveLength(1);
  });
});

function runSetup(env: NodeJS.ProcessEnv): Promise<{ status: number | null; stdout: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [path.join(ROOT, "native", "setup.mjs")], { env, cwd: ROOT });
    let stdout = "";
    child.stdout.on("data", (chunk) => {
      stdout += chunk;
    });
    child.on("error", reject);
    child.on("close", (status) => resolve({ status, stdout }));
  });
}

/** Whether this machine is one where setup.mjs may run apt-get (CI's Debian is). */
function aptMachine(): boolean {
  let text = "";
  try {
    text = readFileSync("/etc/os-release", "utf8");
  } catch {
    return false;
  }
  return process.platform === "linux" && osFamilies(text).some((id) => id === "debian" || id === "ubuntu");
}

describe("native/setup.mjs", () => {
  it("installs what is missing, and when the build still cannot run ends with one notice and status 0", async () => {
    // The compiler is "missing" (CXX names no file); the stand-in apt-get "installs" g++ without effect.
    const { env, log } = fakeTools("setup", {
      sudo: '[ "$1" = -n ] && shift; exec "$@"',
      "apt-get": "exit 0",
    });
    const missingCompiler = path.join(scratch, "no-such-compiler", "g++");
    const { status, stdout } = await runSetup({ ...env, CXX: missingCompiler, FEDSIM_NO_APT: "" });
    expect(status).toBe(0);
    const lines = stdout.trim().split("\n");
    if (aptMachine()) {
      expect(readFileSync(log, "utf8")).toMatch(/apt-get .*install -y --no-install-recommends g\+\+/);
      expect(lines[0]).toMatch(/^fedsim native kernels: installing g\+\+ with (sudo )?apt-get /);
      expect(lines).toHaveLength(2);
      expect(lines[1]).toContain(`no C++ compiler (${missingCompiler})`);
    } else {
      expect(readFileSync(log, "utf8")).toBe("");
      expect(lines).toHaveLength(1);
    }
    expect(lines.at(-1)).toContain("fedsim will train on wasm");
  });

  it("with FEDSIM_NO_APT=1 installs nothing and prints the command instead", async () => {
    const { env, log } = fakeTools("no-apt", {
      sudo: '[ "$1" = -n ] && shift; exec "$@"',
      "apt-get": "exit 0",
    });
    const missingCompiler = path.join(scratch, "no-such-compiler", "g++");
    const { status, stdout } = await runSetup({ ...env, CXX: missingCompiler, FEDSIM_NO_APT: "1" });
    expect(status).toBe(0);
    expect(readFileSync(log, "utf8")).toBe("");
    expect(stdout.trim().split("\n")).toHaveLength(1);
    expect(stdout).toContain("fedsim will train on wasm");
    expect(stdout).toContain("to get them:");
  });
});
