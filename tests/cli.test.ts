import { type ChildProcess, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { createServer } from "node:net";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { websocketMaskingStatus } from "../common/net/websocket-masking.js";
import { CLI, ensureBuilt, ROOT } from "./helpers/built-cli.js";

/** The compiled CLI as a user runs it: a child process, its exit code and its output. */

interface Finished {
  code: number | null;
  stdout: string;
  stderr: string;
}

const started = new Set<ChildProcess>();

function spawnCli(args: string[]): { child: ChildProcess; done: Promise<Finished> } {
  const child = spawn(process.execPath, [CLI, ...args], { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] });
  started.add(child);
  let stdout = "";
  let stderr = "";
  child.stdout?.on("data", (chunk) => {
    stdout += chunk;
  });
  child.stderr?.on("data", (chunk) => {
    stderr += chunk;
  });
  const done = new Promise<Finished>((resolve, reject) => {
    child.once("error", reject);
    child.once("close", (code) => {
      started.delete(child);
      resolve({ code, stdout, stderr });
    });
  });
  return { child, done };
}

function bufferutilLoads(): boolean {
  try {
    createRequire(import.meta.url)("bufferutil");
    return true;
  } catch {
    return false;
  }
}

function runCli(...args: string[]): Promise<Finished> {
  return spawnCli(args).done;
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", () => resolve()));
  const address = server.address();
  const port = typeof address === "object" && address ? address.port : 0;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

describe("the fedsim CLI", () => {
  // A build on a loaded 2-core machine can take minutes; it runs only when dist/ is stale.
  beforeAll(ensureBuilt, 600_000);
  afterAll(() => {
    for (const child of started) if (child.pid !== undefined) child.kill("SIGKILL");
  });

  it("--help lists every command", async () => {
    const r = await runCli("--help");
    expect(r.code).toBe(0);
    for (const command of ["run", "coordinator", "client", "pool", "doctor", "keygen", "privacy"]) {
      expect(r.stdout).toMatch(new RegExp(`^\\s+${command}\\b`, "m"));
    }
    // The internal pool worker is not advertised.
    expect(r.stdout).not.toMatch(/^\s+pool-worker\b/m);
  });

  it("doctor --json reports wasm available and tfjs-node unavailable", async () => {
    const r = await runCli("doctor", "--json");
    expect(r.code).toBe(0);
    const report = JSON.parse(r.stdout) as { backends: { backend: string; available: boolean }[] };
    const byName = new Map(report.backends.map((b) => [b.backend, b.available]));
    expect(byName.get("wasm")).toBe(true);
    expect(byName.get("tfjs-node")).toBe(false);
    expect(byName.get("cpu")).toBe(true);
  });

  it("doctor reports native WebSocket masking (bufferutil; WS_NO_BUFFER_UTIL turns it off) and the update passes' implementation", async () => {
    const r = await runCli("doctor", "--json");
    const report = JSON.parse(r.stdout) as { websocketMasking: { native: boolean; reason: string } };
    // bufferutil is an optional dependency: native exactly when it loads here (it does in CI).
    expect(report.websocketMasking).toEqual({
      native: bufferutilLoads(),
      reason: expect.stringContaining("bufferutil"),
    });
    const passes = (JSON.parse(r.stdout) as { vectorPasses: { implementation: string; reason: string } })
      .vectorPasses;
    expect(["native", "js"]).toContain(passes.implementation);
    expect(passes.reason.length).toBeGreaterThan(0);
    // CI builds the native addon, so there the per-update passes must run natively.
    if (process.env["FEDSIM_REQUIRE_NATIVE"] === "1") expect(passes.implementation).toBe("native");
    const off = websocketMaskingStatus({ WS_NO_BUFFER_UTIL: "1" });
    expect(off.native).toBe(false);
    expect(off.reason).toMatch(/WS_NO_BUFFER_UTIL/);
  });

  it("privacy epsilon --json prints the accountant's epsilon", async () => {
    const r = await runCli(
      "privacy",
      "epsilon",
      "--sampling-rate",
      "0.04",
      "--noise-multiplier",
      "1.5",
      "--steps",
      "2250",
      "--delta",
      "1e-5",
      "--json",
    );
    expect(r.code).toBe(0);
    const result = JSON.parse(r.stdout) as { epsilon: number; steps: number };
    expect(result.epsilon).toBeCloseTo(8.07, 2);
    expect(result.steps).toBe(2250);
  });

  it("run with a scenario file that does not exist exits 2 with INVALID_SCENARIO", async () => {
    const r = await runCli("run", path.join(os.tmpdir(), "fedsim-no-such-scenario.yaml"));
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("INVALID_SCENARIO");
    expect(r.stderr).toContain("fedsim-no-such-scenario.yaml");
  });

  it("coordinator without an admission mode exits 2 and names the options", async () => {
    const r = await runCli("coordinator", "--port", "0");
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("INVALID_CONFIG");
    for (const option of ["--allow", "--token", "--insecure-open"]) expect(r.stderr).toContain(option);
  });

  it("coordinator with a --token shorter than 16 characters exits 2 and names --token", async () => {
    const r = await runCli("coordinator", "--port", "0", "--token", "fifteen-chars-x");
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("INVALID_CONFIG");
    expect(r.stderr).toMatch(/--token\b.*16/);
  });

  it("client with --dataset but no --partition exits 2 and names --partition", async () => {
    const r = await runCli("client", "--server", "http://127.0.0.1:1", "--dataset", "mnist");
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--partition\b/);
  });

  it("client --backend gpu exits 2 with BACKEND_UNAVAILABLE when tfjs-node-gpu is absent", async () => {
    const r = await runCli(
      "client",
      "--server",
      "http://127.0.0.1:1",
      "--dataset",
      "mnist",
      "--partition",
      "0/10",
      "--backend",
      "gpu",
    );
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("BACKEND_UNAVAILABLE");
  });

  it("an unknown option is one line naming it, with a did-you-mean and exit code 2", async () => {
    const r = await runCli("run", "scenarios/quickstart.yaml", "--outt", "runs/x");
    expect(r.code).toBe(2);
    const lines = r.stderr.trim().split("\n");
    expect(lines[0]).toBe("error: INVALID_CONFIG: unknown option '--outt'; did you mean --out?");
    // No usage dump under the error: the hint says where the options are.
    expect(r.stderr).not.toContain("Usage:");
    expect(lines).toHaveLength(2);
  });

  it("a misspelt model or --strategy is refused before anything loads, naming the file and field", async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), "fedsim-cli-typo-"));
    try {
      const file = path.join(dir, "typo.yaml");
      await writeFile(file, "name: typo\nmodel: mnist-cnm\n");
      const r = await runCli("run", file);
      expect(r.code).toBe(2);
      expect(r.stderr).toContain(`${file}: model: unknown model "mnist-cnm"; did you mean "mnist-cnn"?`);
      expect(r.stdout).not.toContain("backend:");
      const s = await runCli("run", "scenarios/quickstart.yaml", "--strategy", "fedprx");
      expect(s.code).toBe(2);
      expect(s.stderr).toMatch(/--strategy: unknown strategy "fedprx"; did you mean "fedprox"\?/);
      expect(s.stdout).not.toContain("backend:");
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("a port already in use is one line with PORT_IN_USE and exit code 2, no stack trace", async () => {
    const holder = createServer();
    await new Promise<void>((resolve) => holder.listen(0, "127.0.0.1", () => resolve()));
    const address = holder.address();
    const port = typeof address === "object" && address ? address.port : 0;
    try {
      const r = await runCli(
        "coordinator",
        "--insecure-open",
        "--host",
        "127.0.0.1",
        "--port",
        String(port),
        "--model",
        "tiny-mlp",
        "--backend",
        "cpu",
      );
      expect(r.code).toBe(2);
      expect(r.stderr).toContain(`error: PORT_IN_USE: port ${port} on 127.0.0.1 is already in use`);
      expect(r.stderr).not.toMatch(/^\s+at /m);
    } finally {
      await new Promise<void>((resolve) => holder.close(() => resolve()));
    }
  }, 120_000);

  it("failed expectations exit 3 with EXPECTATION_FAILED, not a scenario error", async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), "fedsim-cli-expect-"));
    try {
      const file = path.join(dir, "unmet.yaml");
      await writeFile(
        file,
        [
          "name: unmet",
          "model: tiny-mlp",
          "backend: cpu",
          "dataset: { name: mnist, limitTrain: 200, limitTest: 100 }",
          "clients: 2",
          "rounds: 1",
          "expect:",
          "  rounds: { gte: 2 }",
          "",
        ].join("\n"),
      );
      const r = await runCli("run", file, "--processes", "0");
      expect(r.code, r.stderr).toBe(3);
      expect(r.stdout).toContain("expect FAIL rounds 1 ≥ 2");
      expect(r.stderr).toContain("error: EXPECTATION_FAILED: 1 expectation(s) failed");
      expect(r.stderr).not.toContain("INVALID_SCENARIO");
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }, 240_000);

  it("cli/fedsim.js starts the built CLI without rebuilding when nothing changed", async () => {
    const child = spawn(process.execPath, [path.join(ROOT, "cli", "fedsim.js"), "--version"], { cwd: ROOT });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (c) => {
      stdout += c;
    });
    child.stderr.on("data", (c) => {
      stderr += c;
    });
    const code = await new Promise<number | null>((resolve) => child.once("close", resolve));
    expect(code).toBe(0);
    expect(stdout.trim()).toBe("0.1.0");
    expect(stderr).not.toContain("building");
  });

  it("a coordinator and two client processes train one round and save the model", async () => {
    const out = await mkdtemp(path.join(os.tmpdir(), "fedsim-cli-"));
    try {
      const port = await freePort();
      const coordinator = spawnCli([
        "coordinator",
        "--insecure-open",
        "--port",
        String(port),
        "--rounds",
        "1",
        "--min-clients",
        "2",
        "--model",
        "tiny-mlp",
        "--backend",
        "cpu",
        "--batch-size",
        "50",
        "--out",
        out,
      ]);
      // Clients retry until the coordinator listens, so they can start at once. Two eighths of
      // the embedded MNIST (1,000 examples each) keep the round short on a busy machine.
      const clients = [0, 1].map((i) =>
        spawnCli([
          "client",
          "--server",
          `http://127.0.0.1:${port}`,
          "--dataset",
          "mnist",
          "--partition",
          `${i}/8`,
          "--backend",
          "cpu",
        ]),
      );
      const result = await coordinator.done;
      expect(result.code, result.stderr).toBe(0);
      expect(result.stderr).toMatch(/round 1: .*participants 2 failures 0/);
      for (const client of clients) {
        const r = await client.done;
        expect(r.code, r.stderr).toBe(0);
        expect(r.stderr).toContain("client: done after 1 round(s)");
      }
      const lines = (await readFile(path.join(out, "metrics.jsonl"), "utf8")).trim().split("\n");
      expect(lines).toHaveLength(1);
      expect(JSON.parse(lines[0])).toMatchObject({ round: 1, participants: 2, failures: 0 });
      expect(existsSync(path.join(out, "model", "model.json"))).toBe(true);
    } finally {
      await rm(out, { recursive: true, force: true });
    }
  }, 240_000);
});
