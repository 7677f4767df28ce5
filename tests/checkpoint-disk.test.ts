import { existsSync, symlinkSync } from "node:fs";
import { mkdtemp, readdir, readFile, symlink, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import type { ClientNode } from "../client/node.js";
import { ErrorCode, FedsimError } from "../common/errors.js";
import type { FlatWeights } from "../common/weights.js";
import {
  CHECKPOINT_FILE,
  type Checkpoint,
  checkpointTempFile,
  readCheckpoint,
  writeCheckpoint,
} from "../server/checkpoint.js";
import type { CoordinatorHandle } from "../server/coordinator.js";
import { type FailingStep, failingFs } from "./helpers/failing-fs.js";
import { smallMnist, startClients, startTestCoordinator } from "./helpers/federation.js";

/** Checkpoints on a full disk or an unusable folder: we run as root, so chmod proves nothing. */

const previous: Checkpoint = {
  header: {
    round: 3,
    trainable: ["w"],
    strategy: { name: "fedavg", state: {} },
    plugin: null,
    rngState: [1, 2, 3, 4],
    clients: ["c-1"],
    records: [{ round: 1 }, { round: 2 }, { round: 3 }],
    context: null,
  },
  weights: {
    specs: [{ name: "w", shape: [64, 64] }],
    values: Float32Array.from({ length: 4096 }, (_, i) => i),
  },
};
const next: Checkpoint = {
  header: { ...previous.header, round: 4, records: [...previous.header.records, { round: 4 }] },
  weights: { specs: previous.weights.specs, values: previous.weights.values.map((v) => -v) },
};

async function freshDir(): Promise<string> {
  return mkdtemp(path.join(os.tmpdir(), "fedsim-disk-"));
}

async function caught(promise: Promise<unknown>): Promise<FedsimError> {
  const err = await promise.then(
    () => null,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(FedsimError);
  expect((err as FedsimError).code).toBe(ErrorCode.CHECKPOINT);
  return err as FedsimError;
}

function bytesOf(weights: FlatWeights): Buffer {
  return Buffer.from(weights.values.buffer, weights.values.byteOffset, weights.values.byteLength);
}

/** The previous checkpoint is still the one on disk, whole and loadable, with no temp file next to it. */
async function expectPreviousIntact(dir: string): Promise<void> {
  expect(await readdir(dir)).toEqual([CHECKPOINT_FILE]);
  const back = await readCheckpoint(dir);
  expect(back.header.round).toBe(3);
  expect(bytesOf(back.weights)).toEqual(bytesOf(previous.weights));
}

describe("a checkpoint write that fails on a full disk", () => {
  const steps: { step: FailingStep; partialBytes?: number; nthWrite?: number; names: RegExp }[] = [
    { step: "open", names: /creating .*\.tmp/ },
    { step: "write", names: /writing .*\.tmp/ },
    // A short write: half of the weights reach the temp file before the disk fills up.
    { step: "write", nthWrite: 3, partialBytes: 8192, names: /writing .*\.tmp/ },
    { step: "fsync", names: /syncing .*\.tmp/ },
    { step: "close", names: /closing .*\.tmp/ },
    { step: "rename", names: /renaming .*\.tmp to / },
  ];
  for (const { step, partialBytes, nthWrite, names } of steps) {
    const label = `${step}${nthWrite ? ` #${nthWrite}` : ""}${partialBytes ? ` after ${partialBytes} bytes` : ""}`;
    it(`ENOSPC on ${label}: a CHECKPOINT error naming the file and cause; the previous checkpoint stays`, async () => {
      const dir = await freshDir();
      await writeCheckpoint(dir, previous);
      const fs = failingFs({
        step,
        ...(partialBytes ? { partialBytes } : {}),
        ...(nthWrite ? { nthWrite } : {}),
      });
      const err = await caught(writeCheckpoint(dir, next, { fs }));
      expect(err.message).toContain(path.join(dir, CHECKPOINT_FILE));
      expect(err.message).toContain("ENOSPC: no space left on device");
      expect(err.message).toMatch(names);
      expect(err.message).toMatch(/previous checkpoint is intact/);
      // The temp file was removed, and the real checkpoint was never the target of a write.
      expect(fs.calls).toContain(`rm ${checkpointTempFile(dir)}`);
      expect(fs.calls.some((c) => c.startsWith(`open ${path.join(dir, CHECKPOINT_FILE)} `))).toBe(false);
      await expectPreviousIntact(dir);
    });
  }

  it("a failure on the very first checkpoint leaves no file at all, and says there is nothing to resume", async () => {
    const dir = await freshDir();
    await caught(writeCheckpoint(dir, next, { fs: failingFs({ step: "fsync" }) }));
    expect(await readdir(dir)).toEqual([]);
    const err = await caught(readCheckpoint(dir));
    expect(err.message).toMatch(/no checkpoint to resume from/);
  });

  it("a folder that cannot be synced after the rename: skipped when unsupported, reported when the disk fails", async () => {
    const dir = await freshDir();
    await writeCheckpoint(dir, previous);
    // EINVAL: the filesystem cannot fsync a directory. The checkpoint is written all the same.
    await writeCheckpoint(dir, next, { fs: failingFs({ step: "dirsync", code: "EINVAL" }) });
    expect((await readCheckpoint(dir)).header.round).toBe(4);
    // EIO: the new checkpoint is in place (and loadable) but may not be durable; say so.
    const err = await caught(
      writeCheckpoint(
        dir,
        { ...next, header: { ...next.header, round: 5 } },
        { fs: failingFs({ step: "dirsync", code: "EIO" }) },
      ),
    );
    expect(err.message).toMatch(/was written, but syncing the folder .* failed: EIO/);
    expect((await readCheckpoint(dir)).header.round).toBe(5);
    expect(await readdir(dir)).toEqual([CHECKPOINT_FILE]);
  });
});

describe("real failures, as root", () => {
  it("a folder whose parent is a regular file (ENOTDIR)", async () => {
    const dir = await freshDir();
    const blocker = path.join(dir, "not-a-folder");
    await writeFile(blocker, "x");
    const target = path.join(blocker, "run");
    const err = await caught(writeCheckpoint(target, next));
    expect(err.message).toContain(path.join(target, CHECKPOINT_FILE));
    expect(err.message).toMatch(/creating the folder .*: ENOTDIR/);
  });

  it.runIf(existsSync("/dev/full"))("a write the kernel refuses with ENOSPC (/dev/full)", async () => {
    const dir = await freshDir();
    await writeCheckpoint(dir, previous);
    // The writer opens its temp path; here that path leads to /dev/full, whose writes always fail ENOSPC.
    await symlink("/dev/full", checkpointTempFile(dir));
    const err = await caught(writeCheckpoint(dir, next));
    expect(err.message).toMatch(/writing .*\.tmp.*ENOSPC: no space left on device/);
    await expectPreviousIntact(dir);
    expect(existsSync("/dev/full")).toBe(true);
  });
});

describe("the coordinator when a checkpoint cannot be written", () => {
  let coordinator: CoordinatorHandle | undefined;
  let clients: ClientNode[] = [];
  afterEach(async () => {
    for (const c of clients) c.close();
    clients = [];
    await coordinator?.close();
    coordinator = undefined;
  });

  it("stops the run with the CHECKPOINT error; the last good checkpoint stays and the model is untouched", async () => {
    const { parts, test } = await smallMnist(3, 60, 200);
    const outDir = await freshDir();
    let roundOne: Float32Array | null = null;
    let beforeWrite: Float32Array | null = null;
    coordinator = await startTestCoordinator(test, {
      outDir,
      rounds: 3,
      onRound: (record) => {
        if (record.round !== 1) return;
        roundOne = coordinator?.loop.globalWeights.values.slice() ?? null;
        // From now on the disk is full: the next checkpoint's writes go to /dev/full.
        symlinkSync("/dev/full", checkpointTempFile(outDir));
      },
      onPhase: (round, phase) => {
        if (round === 2 && phase === "CHECKPOINTING")
          beforeWrite = coordinator?.loop.globalWeights.values.slice() ?? null;
      },
    });
    clients = startClients(coordinator.url, parts);
    const err = await caught(coordinator.run());
    expect(err.message).toContain(path.join(outDir, CHECKPOINT_FILE));
    expect(err.message).toMatch(/ENOSPC/);

    // Round 2 was aggregated but never recorded on disk: checkpoint and metrics both end at round 1.
    const onDisk = await readCheckpoint(outDir);
    expect(onDisk.header.round).toBe(1);
    expect(roundOne).not.toBeNull();
    expect(Buffer.from(onDisk.weights.values.buffer)).toEqual(
      Buffer.from((roundOne as unknown as Float32Array).buffer),
    );
    const metrics = (await readFile(path.join(outDir, "metrics.jsonl"), "utf8")).trim().split("\n");
    expect(metrics.map((l) => JSON.parse(l).round)).toEqual([1]);
    expect((await readdir(outDir)).filter((f) => f.endsWith(".tmp"))).toEqual([]);

    // The failed write did not touch the in-memory model: it is round 2's aggregate, bit for bit.
    expect(beforeWrite).not.toBeNull();
    const now = coordinator.loop.globalWeights.values;
    expect(Buffer.from(now.buffer, now.byteOffset, now.byteLength)).toEqual(
      Buffer.from((beforeWrite as unknown as Float32Array).buffer),
    );
    expect(now.every(Number.isFinite)).toBe(true);
    // And the run went no further than the round whose checkpoint failed.
    expect(coordinator.loop.records.map((r) => r.round)).toEqual([1, 2]);
  });
});
