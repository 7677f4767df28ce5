import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import * as tf from "@tensorflow/tfjs";
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { Reconnector, retryDelaySeconds, retryLine } from "../client/reconnect.js";
import { formatBytes, formatRoundReport, privacyMode, type RoundReport } from "../client/round-report.js";
import { loadTrainingFiles } from "../common/data/registry.js";
import { ErrorCode, type FedsimError } from "../common/errors.js";
import { withModelClasses } from "../common/train/data.js";

/** A client node's own output: its retry loop and its per-round line; and the files it trains on. */

describe("client retries", () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it("waits double from 0.5 s, capped at --max-wait", () => {
    const policy = { maxRetries: 10, maxWaitSeconds: 3 };
    expect([1, 2, 3, 4, 5].map((k) => retryDelaySeconds(k, policy))).toEqual([0.5, 1, 2, 3, 3]);
    expect(retryLine(2, policy, "cannot connect: ECONNREFUSED")).toBe(
      "cannot connect: ECONNREFUSED; retry 2/10 in 1 s",
    );
  });

  it("announces each retry, dials after the wait it announced, and gives up once after N with COORDINATOR_UNREACHABLE", () => {
    vi.useFakeTimers();
    const lines: string[] = [];
    const dials: number[] = [];
    const gaveUp: FedsimError[] = [];
    const r = new Reconnector(
      "http://127.0.0.1:1",
      { maxRetries: 2, maxWaitSeconds: 1 },
      {
        connect: () => dials.push(Date.now()),
        wanted: () => true,
        log: (line) => lines.push(line),
        giveUp: (err) => gaveUp.push(err),
      },
    );
    const start = Date.now();
    r.failed("cannot connect: ECONNREFUSED");
    vi.advanceTimersByTime(499);
    expect(dials).toEqual([]);
    vi.advanceTimersByTime(1);
    r.failed("cannot connect: ECONNREFUSED");
    vi.advanceTimersByTime(1000);
    r.failed("cannot connect: ECONNREFUSED");
    r.failed("cannot connect: ECONNREFUSED");
    expect(dials.map((t) => t - start)).toEqual([500, 1500]);
    expect(lines).toEqual([
      "cannot connect: ECONNREFUSED; retry 1/2 in 0.5 s",
      "cannot connect: ECONNREFUSED; retry 2/2 in 1 s",
    ]);
    expect(gaveUp).toHaveLength(1);
    expect(gaveUp[0].code).toBe(ErrorCode.COORDINATOR_UNREACHABLE);
    expect(gaveUp[0].message).toBe(
      "gave up on http://127.0.0.1:1 after 2 retries (cannot connect: ECONNREFUSED)",
    );
  });

  it("a connection starts the count again, and a node taken offline schedules nothing", () => {
    vi.useFakeTimers();
    const lines: string[] = [];
    let wanted = true;
    const r = new Reconnector(
      "http://x",
      { maxRetries: 1, maxWaitSeconds: 1 },
      {
        connect: () => {},
        wanted: () => wanted,
        log: (l) => lines.push(l),
        giveUp: () => lines.push("gave up"),
      },
    );
    r.failed("lost");
    vi.advanceTimersByTime(500);
    r.connected();
    r.failed("lost");
    expect(lines).toEqual(["lost; retry 1/1 in 0.5 s", "lost; retry 1/1 in 0.5 s"]);
    vi.advanceTimersByTime(500);
    wanted = false;
    r.failed("lost");
    expect(lines).toHaveLength(2);
  });
});

describe("a client node's round line", () => {
  const report: RoundReport = {
    round: 3,
    examples: 940,
    epochs: 1,
    trainLoss: 0.43219,
    seconds: 1.234,
    bytesDown: 795_000,
    bytesUp: 1_590_000,
    privacy: "none",
    accepted: true,
  };

  it("names round, examples, epochs, train loss, seconds, bytes down and up, privacy mode and the answer", () => {
    expect(formatRoundReport(report)).toBe(
      "round 3: 940 examples, 1 epoch, train loss 0.4322, 1.23 s, 795.0 KB down, 1.6 MB up, privacy none, accepted",
    );
    expect(formatRoundReport({ ...report, accepted: false, code: "NORM_TOO_LARGE" })).toMatch(
      /refused NORM_TOO_LARGE$/,
    );
  });

  it("under DP or SecAgg says the loss stayed on the node", () => {
    expect(privacyMode({ dp: {}, envelopeKey: "k" })).toBe("dp+envelope");
    expect(privacyMode({ secagg: {} })).toBe("secagg");
    expect(privacyMode({})).toBe("none");
    expect(formatRoundReport({ ...report, privacy: "dp" })).toContain("train loss 0.4322 (kept local)");
    expect(formatRoundReport({ ...report, privacy: "envelope" })).not.toContain("kept local");
    expect(formatBytes(999)).toBe("999 B");
  });
});

describe("a node's own training files", () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), "fedsim-train-files-"));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("IDX: train-images and train-labels alone load, with no t10k files", async () => {
    const idx = path.join(dir, "idx");
    await mkdir(idx);
    await writeFile(path.join(idx, "train-images-idx3-ubyte"), idxU8([3, 2, 2], Array(12).fill(255)));
    await writeFile(path.join(idx, "train-labels-idx1-ubyte"), idxU8([3], [0, 4, 2]));
    const data = await loadTrainingFiles("idx", idx);
    expect(data.n).toBe(3);
    expect(data.numClasses).toBe(5);
    expect(Array.from(data.y)).toEqual([0, 4, 2]);
  });

  it("IDX: missing training files are DATA_NOT_FOUND naming the role", async () => {
    const empty = await mkdtemp(path.join(dir, "empty-"));
    await expect(loadTrainingFiles("idx", empty)).rejects.toMatchObject({
      code: ErrorCode.DATA_NOT_FOUND,
      message: expect.stringContaining("trainImages"),
    });
  });

  it("CSV: train.csv alone in a directory, or every row of one file", async () => {
    const csv = path.join(dir, "csv");
    await mkdir(csv);
    await writeFile(path.join(csv, "train.csv"), "a,b,label\n0.1,0.2,0\n0.3,0.4,1\n0.5,0.6,1\n");
    expect((await loadTrainingFiles("csv", csv)).n).toBe(3);
    expect((await loadTrainingFiles("csv", path.join(csv, "train.csv"))).n).toBe(3);
  });

  it("a node whose files lack the highest classes trains over the model's classes", () => {
    const model = tf.sequential({ layers: [tf.layers.dense({ units: 10, inputShape: [4] })] });
    const data = {
      x: new Float32Array(8),
      y: Int32Array.from([0, 3]),
      n: 2,
      exampleShape: [4],
      numClasses: 4,
    };
    expect(withModelClasses(model, data).numClasses).toBe(10);
    expect(withModelClasses(model, { ...data, numClasses: 10 })).toEqual({ ...data, numClasses: 10 });
    model.dispose();
  });
});

function idxU8(dims: number[], values: number[]): Uint8Array {
  const bytes = new Uint8Array(4 + 4 * dims.length + values.length);
  const view = new DataView(bytes.buffer);
  bytes[2] = 0x08;
  bytes[3] = dims.length;
  dims.forEach((d, i) => {
    view.setUint32(4 + 4 * i, d, false);
  });
  bytes.set(values, 4 + 4 * dims.length);
  return bytes;
}
