import { mkdtemp, readFile, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ensureBuilt } from "./helpers/built-cli.js";
import { type CliProcess, killAllCli, spawnCli } from "./helpers/cli-process.js";

/**
 * Protected deployments from the command line: `fedsim clients` nodes with identities from
 * `fedsim keygen --dir` admitted by a coordinator's --allow list and sealing envelopes; and each
 * node's per-round line naming the round's privacy mode (envelope, dp, secagg), plain and --json.
 */

const NODE = ["--backend", "cpu"];
const COORDINATOR = [
  "--model",
  "tiny-mlp",
  "--batch-size",
  "50",
  "--backend",
  "cpu",
  "--port",
  "0",
  "--rounds",
  "1",
];
/** A node's text line, after the optional "node i: " prefix of `fedsim clients`. */
const LINE =
  /^(?:node (\d+): )?round 1: (\d+) examples, 1 epoch, train loss \d+\.\d{4}( \(kept local\))?, \d+\.\d{2} s, [\d.]+ [KM]?B down, [\d.]+ [KM]?B up, privacy (\S+), accepted$/;

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), "fedsim-deploy-privacy-"));
  await ensureBuilt();
}, 600_000);
afterAll(async () => {
  killAllCli();
  await rm(dir, { recursive: true, force: true });
});

async function coordinatorUrl(coordinator: CliProcess): Promise<string> {
  const match = await coordinator.waitFor(/waiting for \d+ client\(s\) at (http:\/\/\S+)/);
  return match[1];
}

/** Parsed text lines of a node process: node index (or -1 for a lone node) → [privacy, kept local]. */
function textLines(stdout: string): Array<{ node: number; privacy: string; keptLocal: boolean }> {
  return stdout
    .trim()
    .split("\n")
    .map((line) => {
      const m = LINE.exec(line);
      if (!m) throw new Error(`not a round line: ${line}`);
      return { node: m[1] === undefined ? -1 : Number(m[1]), privacy: m[4], keptLocal: m[3] !== undefined };
    })
    .sort((a, b) => a.node - b.node);
}

function jsonLines(stdout: string): Array<Record<string, unknown>> {
  return stdout
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

describe("fedsim clients with identities, and the privacy mode on a node's line", () => {
  it("keygen --dir writes node keys and an allowlist; clients --identity-dir joins an --allow --envelope coordinator; lines say envelope", async () => {
    const ids = path.join(dir, "ids");
    const keygen = await spawnCli(["keygen", "--dir", ids, "--count", "2"]).done;
    expect(keygen.code, keygen.stderr).toBe(0);
    const allowlist = path.join(ids, "allowlist.txt");
    const keys = (await readFile(allowlist, "utf8"))
      .split("\n")
      .filter((l) => /^\S+ node-\d c-[0-9a-f]{16}$/.test(l));
    expect(keys).toHaveLength(2);

    const coordinator = spawnCli([
      "coordinator",
      "--allow",
      allowlist,
      "--envelope",
      "--min-clients",
      "2",
      ...COORDINATOR,
    ]);
    const url = await coordinatorUrl(coordinator);
    const nodes = spawnCli([
      "clients",
      "--server",
      url,
      "--count",
      "2",
      "--identity-dir",
      ids,
      "--processes",
      "0",
      ...NODE,
    ]);
    const ran = await coordinator.done;
    expect(ran.code, ran.stderr).toBe(0);
    expect(ran.stderr).toMatch(/round 1: .*participants 2 failures 0/);
    // Admitted by their keys: the registry names them by the ids the allowlist lists.
    for (const key of keys) expect(ran.stderr).toContain(key.split(" ")[2]);
    const end = await nodes.done;
    expect(end.code, end.stderr).toBe(0);
    expect(textLines(end.stdout)).toEqual([
      { node: 0, privacy: "envelope", keptLocal: false },
      { node: 1, privacy: "envelope", keptLocal: false },
    ]);
  }, 300_000);

  it("under DP a node's --json line says dp, and still shows the loss and example count that stay on the node", async () => {
    const coordinator = spawnCli([
      "coordinator",
      "--insecure-open",
      "--dp-noise",
      "0.3",
      "--dp-clip",
      "1",
      "--min-clients",
      "2",
      ...COORDINATOR,
    ]);
    const url = await coordinatorUrl(coordinator);
    const nodes = spawnCli([
      "clients",
      "--server",
      url,
      "--count",
      "2",
      "--json",
      "--processes",
      "0",
      ...NODE,
    ]);
    const ran = await coordinator.done;
    expect(ran.code, ran.stderr).toBe(0);
    const end = await nodes.done;
    expect(end.code, end.stderr).toBe(0);
    const reports = jsonLines(end.stdout).sort((a, b) => Number(a.node) - Number(b.node));
    expect(reports.map((r) => [r.node, r.round, r.privacy, r.accepted])).toEqual([
      [0, 1, "dp", true],
      [1, 1, "dp", true],
    ]);
    for (const r of reports) {
      expect(r.examples).toBe(4000);
      expect(Number.isFinite(r.trainLoss)).toBe(true);
    }
  }, 300_000);

  it("under secure aggregation a node's line says secagg, in text and in --json", async () => {
    const coordinator = spawnCli([
      "coordinator",
      "--insecure-open",
      "--secagg",
      "complete",
      "--min-clients",
      "3",
      "--clients-per-round",
      "3",
      ...COORDINATOR,
    ]);
    const url = await coordinatorUrl(coordinator);
    const pair = spawnCli(["clients", "--server", url, "--count", "2", "--processes", "0", ...NODE]);
    const lone = spawnCli([
      "client",
      "--server",
      url,
      "--dataset",
      "mnist",
      "--partition",
      "2/3",
      "--json",
      ...NODE,
    ]);
    const ran = await coordinator.done;
    expect(ran.code, ran.stderr).toBe(0);
    expect(ran.stderr).toMatch(/round 1: .*participants 3 failures 0/);
    const text = await pair.done;
    expect(text.code, text.stderr).toBe(0);
    expect(textLines(text.stdout)).toEqual([
      { node: 0, privacy: "secagg", keptLocal: true },
      { node: 1, privacy: "secagg", keptLocal: true },
    ]);
    const json = await lone.done;
    expect(json.code, json.stderr).toBe(0);
    expect(jsonLines(json.stdout)).toEqual([
      expect.objectContaining({ round: 1, privacy: "secagg", accepted: true }),
    ]);
  }, 300_000);
});
