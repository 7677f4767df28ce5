import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ensureBuilt, ROOT } from "./helpers/built-cli.js";
import { killAllCli, spawnCli } from "./helpers/cli-process.js";

/**
 * The README's TLS walkthrough, run as written: its openssl block makes the CA and the
 * coordinator's certificate, then a real coordinator serves with them and real client nodes dial it.
 */

const MARKER = "<!-- tests/tls-walkthrough.test.ts runs the next block exactly as it stands -->";

/** The fenced block right after the marker, so the README and this test cannot drift apart. */
function walkthroughBlock(readme: string): string {
  const at = readme.indexOf(MARKER);
  if (at < 0) throw new Error("README.md lost its TLS walkthrough marker");
  const match = /```sh\n([\s\S]*?)```/.exec(readme.slice(at + MARKER.length));
  if (!match) throw new Error("no ```sh block after the TLS walkthrough marker");
  return match[1];
}

const NODE = ["--dataset", "mnist", "--partition", "0/10", "--backend", "cpu"];

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), "fedsim-tls-walkthrough-"));
  await ensureBuilt();
}, 600_000);
afterAll(async () => {
  killAllCli();
  await rm(dir, { recursive: true, force: true });
});

describe("README: TLS with your own CA", () => {
  it("its openssl commands make files a coordinator serves with; a client with --ca trains a round, one without stops with TLS_UNTRUSTED", async () => {
    const block = walkthroughBlock(await readFile(path.join(ROOT, "README.md"), "utf8"));
    expect(block).toContain("subjectAltName=");
    await promisify(execFile)("sh", ["-e", "-c", block], { cwd: dir, timeout: 60_000 });

    const coordinator = spawnCli([
      "coordinator",
      "--tls-cert",
      path.join(dir, "cert.pem"),
      "--tls-key",
      path.join(dir, "key.pem"),
      "--port",
      "0",
      "--insecure-open",
      "--min-clients",
      "1",
      "--rounds",
      "1",
      "--model",
      "tiny-mlp",
      "--batch-size",
      "50",
      "--backend",
      "cpu",
    ]);
    const [, port] = await coordinator.waitFor(/waiting for 1 client\(s\) at https:\/\/127\.0\.0\.1:(\d+)/);

    // No --ca: the chain ends at a CA this node does not know. Said once, no retries.
    const untrusted = await spawnCli(["client", "--server", `https://127.0.0.1:${port}`, ...NODE]).done;
    expect(untrusted.code, untrusted.stderr).toBe(2);
    expect(untrusted.stderr).not.toContain("retry");
    const errors = untrusted.stderr.split("\n").filter((l) => l.startsWith("error:"));
    expect(errors).toEqual([
      expect.stringMatching(
        /^error: TLS_UNTRUSTED: the certificate of https:\/\/127\.0\.0\.1:\d+ is not trusted: .*; pass the CA certificate that signed it with --ca FILE$/,
      ),
    ]);

    // With --ca, dialling the DNS name the certificate lists: it trains the round.
    const ca = path.join(dir, "ca.pem");
    const trusted = spawnCli(["client", "--server", `https://localhost:${port}`, "--ca", ca, ...NODE]);
    const ran = await coordinator.done;
    expect(ran.code, ran.stderr).toBe(0);
    expect(ran.stderr).toMatch(/round 1: .*participants 1 failures 0/);
    const node = await trusted.done;
    expect(node.code, node.stderr).toBe(0);
    expect(node.stdout).toMatch(/^round 1: 800 examples, .* accepted$/m);
    // The coordinator's goodbye reached it over TLS: it left, rather than retrying a closed port.
    expect(node.stderr).toContain("coordinator shut down");
    expect(node.stderr).not.toContain("retry");
  }, 300_000);
});
