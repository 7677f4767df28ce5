import { mkdtemp, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { keygenCommand, nodeIdentityPath, runKeygen, runKeygenDir } from "../cli/commands/keygen.js";
import { clientIdOf, decodePublicKey, loadIdentity, parseAllowlist } from "../common/crypto/identity.js";
import { ErrorCode, FedsimError } from "../common/errors.js";

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "fedsim-keygen-"));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe("keygen", () => {
  it("writes a loadable identity file with mode 0600", async () => {
    const result = await runKeygen({ out: join(dir, "keys", "client.json") });
    expect((await stat(result.path)).mode & 0o777).toBe(0o600);
    const identity = await loadIdentity(result.path);
    expect(identity.publicKey).toEqual(decodePublicKey(result.publicKey));
    expect(result.clientId).toBe(clientIdOf(identity.publicKey));
  });

  it("returns a public key the allowlist parser accepts", async () => {
    const result = await runKeygen({ out: join(dir, "client.json") });
    expect(parseAllowlist(`${result.publicKey} ${result.clientId}\n`)).toEqual(new Set([result.publicKey]));
  });

  it("refuses to overwrite an existing file without force", async () => {
    const out = join(dir, "client.json");
    const first = await runKeygen({ out });
    const err = await runKeygen({ out }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(FedsimError);
    expect((err as FedsimError).code).toBe(ErrorCode.INVALID_CONFIG);
    // Says what to type, in the CLI's words rather than the library's option names.
    const text = [(err as FedsimError).message, ...(err as FedsimError).details].join("\n");
    expect(text).toContain("--force");
    expect(text).not.toMatch(/overwrite: true/);
    expect(clientIdOf((await loadIdentity(out)).publicKey)).toBe(first.clientId);
  });

  it("overwrites with force", async () => {
    const out = join(dir, "client.json");
    const first = await runKeygen({ out });
    const second = await runKeygen({ out, force: true });
    expect(second.publicKey).not.toBe(first.publicKey);
    expect(clientIdOf((await loadIdentity(out)).publicKey)).toBe(second.clientId);
  });

  it("the command prints the allowlist line", async () => {
    const out = join(dir, "client.json");
    const lines: string[] = [];
    const original = console.log;
    console.log = (...args: unknown[]) => {
      lines.push(args.join(" "));
    };
    try {
      await keygenCommand().parseAsync(["--out", out], { from: "user" });
    } finally {
      console.log = original;
    }
    const identity = await loadIdentity(out);
    const clientId = clientIdOf(identity.publicKey);
    expect(lines).toContain(`${Buffer.from(identity.publicKey).toString("base64")} ${clientId}`);
  });

  it("--dir writes one key per node and their allowlist; a second run keeps the keys and adds nodes; --force replaces them", async () => {
    const ids = join(dir, "ids");
    const first = await runKeygenDir({ dir: ids, count: 2 });
    expect(first).toMatchObject({ created: 2, kept: 0 });
    const keysOf = async (count: number) =>
      Promise.all(
        Array.from({ length: count }, async (_, i) =>
          Buffer.from((await loadIdentity(nodeIdentityPath(ids, i))).publicKey).toString("base64"),
        ),
      );
    const before = await keysOf(2);
    expect(parseAllowlist(await readFile(first.allowlist, "utf8"))).toEqual(new Set(before));
    for (let i = 0; i < 2; i++) expect((await stat(nodeIdentityPath(ids, i))).mode & 0o777).toBe(0o600);

    const grown = await runKeygenDir({ dir: ids, count: 3 });
    expect(grown).toMatchObject({ created: 1, kept: 2 });
    const after = await keysOf(3);
    expect(after.slice(0, 2)).toEqual(before);
    expect(parseAllowlist(await readFile(grown.allowlist, "utf8"))).toEqual(new Set(after));

    const replaced = await runKeygenDir({ dir: ids, count: 3, force: true });
    expect(replaced).toMatchObject({ created: 3, kept: 0 });
    expect((await keysOf(3)).filter((k) => after.includes(k))).toEqual([]);
  });
});
