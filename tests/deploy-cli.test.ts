import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadEmbeddedMnist } from "../common/data/mnist.js";
import { ensureBuilt } from "./helpers/built-cli.js";
import { killAllCli, spawnCli } from "./helpers/cli-process.js";

/**
 * A real deployment from the command line: `fedsim coordinator`, `fedsim client` and
 * `fedsim clients` as separate processes, waited on through what they print.
 */

const NODE = ["--backend", "cpu"];
/** A small model and large batches keep each round short on a busy machine. */
const SMALL = [
  "--model",
  "tiny-mlp",
  "--batch-size",
  "50",
  "--backend",
  "cpu",
  "--insecure-open",
  "--port",
  "0",
];
const ROUND_LINE =
  /^round (\d+): (\d+) examples, 1 epoch, train loss \d+\.\d{4}, \d+\.\d{2} s, \d+\.\d KB down, \d+\.\d KB up, privacy none, accepted$/;

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), "fedsim-deploy-"));
  // A build on a loaded 2-core machine can take minutes; it runs only when dist/ is stale.
  await ensureBuilt();
}, 600_000);
afterAll(async () => {
  killAllCli();
  await rm(dir, { recursive: true, force: true });
});

/** The URL a coordinator started with --port 0 announces once it listens. */
async function coordinatorUrl(coordinator: ReturnType<typeof spawnCli>): Promise<string> {
  const match = await coordinator.waitFor(/waiting for \d+ client\(s\) at (http:\/\/\S+)/);
  return match[1];
}

describe("fedsim coordinator and client nodes", () => {
  it("--config with --strategy-option runs over two clients (plain and --json lines) and leaves files report and compare accept", async () => {
    const out = path.join(dir, "config-run");
    const config = path.join(dir, "federation.yaml");
    await writeFile(
      config,
      [
        "name: deploy-trial",
        "clients: 10 # a simulation setting: skipped, and said so",
        "rounds: 2",
        "strategy: { name: fedavgm, momentum: 0.9, serverLearningRate: 1 }",
      ].join("\n"),
    );
    const coordinator = spawnCli([
      "coordinator",
      "--config",
      config,
      "--strategy-option",
      "momentum=0.5",
      "--clients-per-round",
      "2",
      "--min-clients",
      "2",
      "--out",
      out,
      ...SMALL,
    ]);
    const url = await coordinatorUrl(coordinator);
    const plain = spawnCli(["client", "--server", url, "--dataset", "mnist", "--partition", "0/8", ...NODE]);
    const json = spawnCli([
      "client",
      "--server",
      url,
      "--dataset",
      "mnist",
      "--partition",
      "1/8",
      "--json",
      ...NODE,
    ]);
    const ran = await coordinator.done;
    expect(ran.code, ran.stderr).toBe(0);
    expect(ran.stderr).toContain("not read here (they describe simulated clients): clients");
    expect(ran.stderr).toContain('strategy {"name":"fedavgm","serverLearningRate":1,"momentum":0.5}');
    expect(ran.stderr).toMatch(/round 2: .*participants 2 failures 0/);

    const plainEnd = await plain.done;
    expect(plainEnd.code, plainEnd.stderr).toBe(0);
    const lines = plainEnd.stdout.trim().split("\n");
    expect(lines.map((l) => ROUND_LINE.exec(l)?.slice(1, 3))).toEqual([
      ["1", "1000"],
      ["2", "1000"],
    ]);
    const jsonEnd = await json.done;
    expect(jsonEnd.code, jsonEnd.stderr).toBe(0);
    const reports = jsonEnd.stdout
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(reports.map((r) => r.round)).toEqual([1, 2]);
    for (const r of reports) {
      expect(r).toMatchObject({ examples: 1000, epochs: 1, privacy: "none", accepted: true });
      expect(Number.isFinite(r.trainLoss)).toBe(true);
      expect(r.bytesDown).toBeGreaterThan(0);
      expect(r.bytesUp).toBeGreaterThan(0);
    }

    const summary = JSON.parse(await readFile(path.join(out, "summary.json"), "utf8"));
    expect(summary).toMatchObject({ scenario: "deploy-trial", strategy: "fedavgm" });
    expect(summary.stopReason).toBeUndefined();
    // The report's configuration table: the federation as run, without simulation fields.
    expect(summary.config).toMatchObject({ strategy: "fedavgm", "strategy.momentum": 0.5, minClients: 2 });
    expect(summary.config.partition).toBeUndefined();
    expect(summary.rounds.map((r: { participants: number }) => r.participants)).toEqual([2, 2]);
    expect((await readFile(path.join(out, "metrics.jsonl"), "utf8")).trim().split("\n")).toHaveLength(2);
    const report = await spawnCli(["report", out]).done;
    expect(report.code, report.stderr).toBe(0);
    expect(existsSync(path.join(out, "report.html"))).toBe(true);
    const compare = await spawnCli(["compare", out, out, "--json", "--out", path.join(dir, "compare.html")])
      .done;
    expect(compare.code, compare.stderr).toBe(0);
    expect(JSON.parse(compare.stdout).rows).toHaveLength(2);
  }, 300_000);

  it("Ctrl-C mid-run still writes summary.json, metrics.jsonl and report.html; a --quiet node on training files only prints nothing", async () => {
    const data = path.join(dir, "train-only");
    await writeTrainingIdx(data, 500);
    const out = path.join(dir, "interrupted");
    const coordinator = spawnCli([
      "coordinator",
      "--rounds",
      "50",
      "--min-clients",
      "1",
      "--out",
      out,
      ...SMALL,
    ]);
    const url = await coordinatorUrl(coordinator);
    const node = spawnCli(["client", "--server", url, "--data", data, "--quiet", ...NODE]);
    await coordinator.waitFor(/round 2: .*participants 1 failures 0/);
    coordinator.child.kill("SIGINT");
    const stopped = await coordinator.done;
    expect(stopped.code, stopped.stderr).toBe(130);

    const summary = JSON.parse(await readFile(path.join(out, "summary.json"), "utf8"));
    expect(summary.stopReason).toBe("stopped by SIGINT");
    expect(summary.rounds.length).toBeGreaterThanOrEqual(2);
    for (const r of summary.rounds) expect(r).toMatchObject({ participants: 1, sampled: 1 });
    const metrics = (await readFile(path.join(out, "metrics.jsonl"), "utf8")).trim().split("\n");
    expect(metrics.length).toBeGreaterThanOrEqual(summary.rounds.length);
    expect(existsSync(path.join(out, "report.html"))).toBe(true);
    const report = await spawnCli(["report", out]).done;
    expect(report.code, report.stderr).toBe(0);

    // The coordinator said goodbye on its way out, so the node leaves cleanly, having said nothing.
    const left = await node.done;
    expect(left.code, left.stderr).toBe(0);
    expect(left.stdout).toBe("");
    expect(left.stderr).not.toMatch(/examples|connected|done/);
  }, 300_000);

  it("a client against a closed port with --max-retries 2 --max-wait 1 announces each retry and gives up in one line, exit 1", async () => {
    const port = await closedPort();
    const r = await spawnCli([
      "client",
      "--server",
      `http://127.0.0.1:${port}`,
      "--dataset",
      "mnist",
      "--partition",
      "0/10",
      "--max-retries",
      "2",
      "--max-wait",
      "1",
      ...NODE,
    ]).done;
    expect(r.code, r.stderr).toBe(1);
    expect(r.stderr).toMatch(/ECONNREFUSED.*; retry 1\/2 in 0\.5 s/);
    expect(r.stderr).toMatch(/ECONNREFUSED.*; retry 2\/2 in 1 s/);
    expect(r.stderr).not.toContain("retry 3/");
    const errors = r.stderr.split("\n").filter((l) => l.startsWith("error:"));
    expect(errors).toEqual([
      expect.stringMatching(
        new RegExp(
          `^error: COORDINATOR_UNREACHABLE: gave up on http://127.0.0.1:${port} after 2 retries \\(.*ECONNREFUSED`,
        ),
      ),
    ]);
  }, 120_000);

  it("fedsim clients --count 3 trains three nodes on a Dirichlet split, one status line per node per round", async () => {
    const coordinator = spawnCli(["coordinator", "--rounds", "2", "--min-clients", "3", ...SMALL]);
    const url = await coordinatorUrl(coordinator);
    const clients = spawnCli([
      "clients",
      "--server",
      url,
      "--count",
      "3",
      "--dataset",
      "mnist",
      "--partition-scheme",
      "dirichlet",
      "--alpha",
      "0.5",
      ...NODE,
    ]);
    const ran = await coordinator.done;
    expect(ran.code, ran.stderr).toBe(0);
    expect(ran.stderr).toMatch(/round 2: .*participants 3 failures 0/);
    const end = await clients.done;
    expect(end.code, end.stderr).toBe(0);
    const seen = end.stdout
      .trim()
      .split("\n")
      .map((line) => {
        const match = /^node (\d): (.*)$/.exec(line);
        const round = match ? ROUND_LINE.exec(match[2]) : null;
        return match && round ? `${match[1]}:${round[1]}` : `unexpected: ${line}`;
      })
      .sort();
    expect(seen).toEqual(["0:1", "0:2", "1:1", "1:2", "2:1", "2:2"]);
  }, 300_000);
});

/** A port nothing listens on: bound once, then released. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", () => resolve()));
  const address = server.address();
  const port = typeof address === "object" && address ? address.port : 0;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** The first `n` embedded MNIST training digits as IDX train-images/train-labels, and no test files. */
async function writeTrainingIdx(target: string, n: number): Promise<void> {
  const { train } = loadEmbeddedMnist();
  const size = 28 * 28;
  const header = (dims: number[]) => {
    const bytes = Buffer.alloc(4 + 4 * dims.length);
    bytes[2] = 0x08;
    bytes[3] = dims.length;
    dims.forEach((d, i) => {
      bytes.writeUInt32BE(d, 4 + 4 * i);
    });
    return bytes;
  };
  const pixels = Buffer.from(Array.from(train.x.subarray(0, n * size), (v) => Math.round(v * 255)));
  const labels = Buffer.from(Array.from(train.y.subarray(0, n)));
  await mkdir(target, { recursive: true });
  await writeFile(path.join(target, "train-images-idx3-ubyte"), Buffer.concat([header([n, 28, 28]), pixels]));
  await writeFile(path.join(target, "train-labels-idx1-ubyte"), Buffer.concat([header([n]), labels]));
}
