import { spawn } from "node:child_process";
import { readFileSync, statSync } from "node:fs";
import { mkdir, mkdtemp, readFile, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { ErrorCode, FedsimError } from "../common/errors.js";
import { runScenario } from "../scenarios/runner.js";
import { parseScenario } from "../scenarios/schema.js";
import { CHECKPOINT_FILE, readCheckpoint, writeCheckpoint } from "../server/checkpoint.js";
import { CLI, ensureBuilt, ROOT } from "./helpers/built-cli.js";

const weights = { specs: [{ name: "w", shape: [2, 3] }], values: Float32Array.from([1, 2, 3, 4, 5, 6]) };
const header = {
  round: 3,
  trainable: ["w"],
  strategy: { name: "fedavg", state: {} },
  plugin: { ledger: [{ q: 0.5, z: 1, steps: 3 }] },
  rngState: [1, 2, 3, 4],
  clients: ["c-1"],
  records: [{ round: 1 }, { round: 2 }, { round: 3 }],
  context: { scenario: "x" },
};

async function expectCheckpointError(promise: Promise<unknown>, pattern: RegExp): Promise<void> {
  const err = await promise.then(
    () => null,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(FedsimError);
  expect((err as FedsimError).code).toBe(ErrorCode.CHECKPOINT);
  expect((err as FedsimError).message).toMatch(pattern);
}

describe("checkpoint files", () => {
  it("round-trips the model and every piece of state", async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), "fedsim-ckpt-"));
    await writeCheckpoint(dir, { header, weights });
    const back = await readCheckpoint(dir);
    expect(Array.from(back.weights.values)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(back.header).toEqual(header);
    expect(statSync(path.join(dir, CHECKPOINT_FILE)).mode & 0o777).toBe(0o600);
  });

  it("refuses a truncated checkpoint, naming the file", async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), "fedsim-ckpt-"));
    const file = await writeCheckpoint(dir, { header, weights });
    const bytes = readFileSync(file);
    await writeFile(file, bytes.subarray(0, bytes.byteLength - 5));
    await expectCheckpointError(readCheckpoint(dir), new RegExp(`${CHECKPOINT_FILE}.*truncated`));
  });

  it("refuses a checkpoint with a flipped bit in the weights or in the header", async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), "fedsim-ckpt-"));
    const file = await writeCheckpoint(dir, { header, weights });
    const bytes = new Uint8Array(readFileSync(file));
    const inWeights = bytes.slice();
    inWeights[inWeights.byteLength - 2] ^= 0x10;
    await writeFile(file, inWeights);
    await expectCheckpointError(readCheckpoint(dir), /weights checksum/);
    const inHeader = bytes.slice();
    const at = Buffer.from(bytes).indexOf('"round":3');
    inHeader[at + 8] = "4".charCodeAt(0);
    await writeFile(file, inHeader);
    await expectCheckpointError(readCheckpoint(dir), /header checksum/);
  });

  it("a failed write gives a clear error and leaves the previous checkpoint intact", async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), "fedsim-ckpt-"));
    await writeCheckpoint(dir, { header, weights });
    // Block the temp file's path with a directory, so the write fails midway (root ignores chmod).
    await mkdir(path.join(dir, `${CHECKPOINT_FILE}.${process.pid}.tmp`));
    const newer = { ...header, round: 4 };
    await expectCheckpointError(
      writeCheckpoint(dir, { header: newer, weights }),
      /previous checkpoint is intact/,
    );
    expect((await readCheckpoint(dir)).header.round).toBe(3);
  });

  it("says plainly when there is nothing to resume from", async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), "fedsim-ckpt-"));
    await expectCheckpointError(readCheckpoint(dir), /no checkpoint to resume from/);
  });
});

const scenarioInput = {
  name: "resume",
  seed: 5,
  backend: "cpu" as const,
  dataset: { name: "mnist" as const, limitTrain: 600, limitTest: 300 },
  model: "tiny-mlp",
  clients: 3,
  minFitClients: 2,
  roundDeadlineSeconds: 60,
  fit: { epochs: 1, batchSize: 16, learningRate: 0.1 },
  privacy: { dp: { mode: "central" as const, noiseMultiplier: 1, clipNorm: 5, delta: 1e-5 } },
};

describe("resume", () => {
  it("a resumed run continues the rounds, metrics and ε of the interrupted one", async () => {
    const out = await mkdtemp(path.join(os.tmpdir(), "fedsim-resume-"));
    const first = await runScenario(parseScenario({ ...scenarioInput, rounds: 2 }), {
      outDir: out,
      processes: 0,
    });
    const resumed = await runScenario(parseScenario({ ...scenarioInput, rounds: 4 }), {
      outDir: out,
      processes: 0,
      resume: true,
    });
    expect(resumed.rounds.map((r) => r.round)).toEqual([1, 2, 3, 4]);
    expect(resumed.rounds.slice(0, 2)).toEqual(first.rounds);
    // Under DP the clients are drawn from a CSPRNG: the checkpoint's seeded state does not decide them.
    expect([first.sampling, resumed.sampling]).toEqual(["csprng", "csprng"]);
    expect(resumed.rounds.every((r) => r.trainLoss === undefined)).toBe(true);
    // The accountant counted the two rounds before the resume.
    expect(resumed.rounds[2].epsilon).toBeGreaterThan(first.rounds[1].epsilon ?? Number.POSITIVE_INFINITY);
    const metrics = (await readFile(path.join(out, "metrics.jsonl"), "utf8")).trim().split("\n");
    expect(metrics.map((l) => JSON.parse(l).round)).toEqual([1, 2, 3, 4]);
    const saved = JSON.parse(await readFile(path.join(out, "summary.json"), "utf8"));
    expect(saved.rounds.map((r: { round: number }) => r.round)).toEqual([1, 2, 3, 4]);
  });

  it("refuses to resume under another strategy", async () => {
    const out = await mkdtemp(path.join(os.tmpdir(), "fedsim-resume-"));
    await writeCheckpoint(out, {
      header: { ...header, strategy: { name: "krum", state: {} }, trainable: [] },
      weights,
    });
    const err = await runScenario(parseScenario({ ...scenarioInput, rounds: 3 }), {
      outDir: out,
      processes: 0,
      resume: true,
    }).then(
      () => null,
      (e: unknown) => e,
    );
    expect((err as FedsimError).code).toBe(ErrorCode.CHECKPOINT);
  });
});

/** A CLI process and a promise of its exit, with what it printed on stdout so far. */
function spawnCli(args: string[]) {
  const child = spawn(process.execPath, [CLI, ...args], { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (chunk) => {
    stdout += chunk;
  });
  child.stderr.on("data", (chunk) => {
    stderr += chunk;
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once("close", (code, signal) => resolve({ code, signal })),
  );
  return { child, exited, stdout: () => stdout, stderr: () => stderr };
}

describe("kill -9 the coordinator mid-run, then --resume", () => {
  // A build on a loaded 2-core machine can take minutes; it runs only when dist/ is stale.
  beforeAll(ensureBuilt, 600_000);

  it("finishes the run with every round exactly once", async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), "fedsim-kill-"));
    const scenarioFile = path.join(dir, "s.json");
    await writeFile(scenarioFile, JSON.stringify({ ...scenarioInput, rounds: 5, privacy: undefined }));
    const out = path.join(dir, "out");
    const run = spawnCli(["run", scenarioFile, "--out", out, "--processes", "1"]);
    // The run prints a round's line once its checkpoint and metrics line are on disk: kill it then.
    await new Promise<void>((resolve, reject) => {
      const onData = () => {
        if (!/^round 2\/5 /m.test(run.stdout())) return;
        run.child.stdout.off("data", onData);
        run.child.kill("SIGKILL");
        resolve();
      };
      run.child.stdout.on("data", onData);
      run.exited.then(({ code }) =>
        reject(new Error(`run exited (${code}) before round 2 was printed:\n${run.stdout()}${run.stderr()}`)),
      );
    });
    expect((await run.exited).signal).toBe("SIGKILL");
    const before = (await readCheckpoint(out)).header.round;
    expect(before).toBeGreaterThanOrEqual(2);
    expect(before).toBeLessThan(5);

    const resumed = spawnCli(["run", "--resume", out, "--processes", "1"]);
    const { code } = await resumed.exited;
    expect(resumed.stderr()).not.toMatch(/error:/);
    expect(code, resumed.stderr()).toBe(0);
    const metrics = path.join(out, "metrics.jsonl");
    const summary = JSON.parse(readFileSync(path.join(out, "summary.json"), "utf8"));
    expect(summary.rounds.map((r: { round: number }) => r.round)).toEqual([1, 2, 3, 4, 5]);
    expect(
      readFileSync(metrics, "utf8")
        .trim()
        .split("\n")
        .map((l) => JSON.parse(l).round),
    ).toEqual([1, 2, 3, 4, 5]);
    // Four Node processes start tfjs and train five rounds between them: minutes on a loaded machine.
  }, 600_000);
});
