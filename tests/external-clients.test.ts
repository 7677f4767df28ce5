import { mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { externalClientCommand } from "../scenarios/external.js";
import { scenarioSchema } from "../scenarios/schema.js";
import { ensureBuilt } from "./helpers/built-cli.js";
import { killAllCli, spawnCli } from "./helpers/cli-process.js";

/**
 * A scenario's `external:` clients from the command line: `fedsim run` prints the command for
 * each, and that command, pasted as printed, joins the run; when nobody comes, the run says so
 * without --verbose and carries on.
 */

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), "fedsim-external-"));
  await ensureBuilt();
}, 600_000);
afterAll(async () => {
  killAllCli();
  await rm(dir, { recursive: true, force: true });
});

async function scenarioFile(name: string, external: string): Promise<string> {
  const file = path.join(dir, `${name}.yaml`);
  await writeFile(
    file,
    [
      `name: ${name}`,
      "clients: 1",
      "rounds: 2",
      "model: tiny-mlp",
      "backend: cpu",
      "fit: { batchSize: 50 }",
      `external: ${external}`,
    ].join("\n"),
  );
  return file;
}

/** The table `fedsim run` prints at the end: round → participants. */
function participants(stdout: string): number[] {
  return [...stdout.matchAll(/^\s+(\d+)\s+\d\.\d{4}\s+\d+\.\d{4}\s+(\d+)\s+\d+\s+[\d.]+$/gm)].map((m) =>
    Number(m[2]),
  );
}

describe("fedsim run with external clients", () => {
  it("prints a client command that, run as printed, joins the run and trains every round", async () => {
    const file = await scenarioFile("external-joins", "{ clients: 1, host: 127.0.0.1, port: 0 }");
    const run = spawnCli(["run", file, "--processes", "0"]);
    const [, printed] = await run.waitFor(/^ {2}(npx fedsim client .*)$/m, "stdout");
    expect(printed).toMatch(
      /--server http:\/\/127\.0\.0\.1:\d+ --token \S+ --dataset mnist --partition 0\/1$/,
    );
    // What a user pastes: `npx fedsim` is the compiled CLI; everything after it as printed.
    const words = printed.split(" ");
    expect(words.slice(0, 2)).toEqual(["npx", "fedsim"]);
    const node = spawnCli(words.slice(2));

    const ran = await run.done;
    expect(ran.code, ran.stderr).toBe(0);
    expect(ran.stdout).not.toContain("WARNING");
    expect(participants(ran.stdout)).toEqual([2, 2]);
    const joined = await node.done;
    expect(joined.code, joined.stderr).toBe(0);
    expect(joined.stdout.match(/^round \d: .* accepted$/gm)).toEqual([
      expect.stringMatching(/^round 1: /),
      expect.stringMatching(/^round 2: /),
    ]);
  }, 300_000);

  it("says out loud, without --verbose, that the external client did not come, then runs without it", async () => {
    const file = await scenarioFile(
      "external-absent",
      "{ clients: 1, host: 127.0.0.1, port: 0, waitSeconds: 1 }",
    );
    const ran = await spawnCli(["run", file, "--processes", "0"]).done;
    expect(ran.code, ran.stderr).toBe(0);
    const lines = ran.stdout.split("\n");
    const notice = lines.findIndex((l) =>
      /^WARNING: only 0 of 1 external client\(s\) connected within 1 s; carrying on without the others/.test(
        l,
      ),
    );
    expect(notice).toBeGreaterThan(-1);
    // Before the rounds it carries on with.
    expect(lines.findIndex((l) => l.startsWith("round 1/2"))).toBeGreaterThan(notice);
    expect(participants(ran.stdout)).toEqual([1, 1]);
  }, 300_000);
});

describe("the printed external client command", () => {
  it("dials an address other machines can reach when the run listens everywhere, and quotes what a shell would split", () => {
    const scenario = scenarioSchema.parse({
      name: "everywhere",
      clients: 2,
      dataset: { name: "mnist" },
      external: { clients: 3, token: "a token with 'quotes' and spaces" },
    });
    const command = externalClientCommand(
      "http://0.0.0.0:8123",
      "a token with 'quotes' and spaces",
      scenario,
      2,
    );
    expect(command).toMatch(/^npx fedsim client --server http:\/\/(\S+):8123 /);
    expect(command).not.toContain("0.0.0.0");
    expect(command).toContain(`--token 'a token with '\\''quotes'\\'' and spaces'`);
    expect(command).toMatch(/--dataset mnist --partition 2\/3$/);
  });
});
