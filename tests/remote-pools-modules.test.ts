import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ErrorCode } from "../common/errors.js";
import type { RunSummary } from "../scenarios/report.js";
import { ensureBuilt, ROOT } from "./helpers/built-cli.js";
import { killAllCli, spawnCli } from "./helpers/cli-process.js";

/**
 * A scenario whose dataset is defined in a file, over a pool on another host (here loopback):
 * the run names the file by content, and a pool imports only a file its operator registers with
 * the same content, or refuses before starting a worker.
 */
const SCRIPT = path.join(ROOT, "tests", "fixtures", "remote-blobs.mjs");
let tmp: string;

beforeAll(async () => {
  tmp = await mkdtemp(path.join(os.tmpdir(), "fedsim-pool-modules-"));
  await ensureBuilt();
}, 300_000);

afterAll(async () => {
  killAllCli();
  await rm(tmp, { recursive: true, force: true });
});

describe("remote pools with a dataset defined in a file", () => {
  it("a pool that registers the same file hosts the clients; one without it, or with other content, is refused", async () => {
    const out = path.join(tmp, "run");
    const run = spawnCli(["run", SCRIPT, "--out", out]);
    const [, printed] = await run.waitFor(/^ {2}fedsim pool (.+)$/m, "stdout");
    const args = printed.trim().split(/\s+/);
    // The printed line registers the run's own file, at its path on this host.
    expect(args.slice(-2)).toEqual(["--register", SCRIPT]);
    const bare = args.slice(0, -2);

    const unregistered = await spawnCli(["pool", ...bare, "--cores", "1", "--name", "bare"]).done;
    expect(unregistered.code).toBe(2);
    expect(unregistered.stderr).toContain(ErrorCode.INVALID_CONFIG);
    expect(unregistered.stderr).toContain("pass the same file with --register");

    const edited = path.join(tmp, "remote-blobs.mjs");
    await writeFile(edited, `${await readFile(SCRIPT, "utf8")}\n// edited\n`);
    const other = await spawnCli(["pool", ...bare, "--register", edited, "--cores", "1", "--name", "other"])
      .done;
    expect(other.code).toBe(2);
    expect(other.stderr).toContain("remote-blobs.mjs (sha256");

    const good = spawnCli(["pool", ...args, "--cores", "1", "--name", "good"]);
    const finished = await run.done;
    expect(finished.code, finished.stderr).toBe(0);
    expect((await good.done).code).toBe(0);
    const summary = JSON.parse(await readFile(path.join(out, "summary.json"), "utf8")) as RunSummary;
    expect(summary.rounds.map((r) => r.participants)).toEqual([6, 6]);
    expect(summary.final.accuracy).toBeGreaterThan(summary.initial.accuracy);
    expect(summary.rounds.map((r) => r.pools?.map((p) => [p.name, p.clients]))).toEqual([
      [["good", 6]],
      [["good", 6]],
    ]);
  }, 300_000);
});
