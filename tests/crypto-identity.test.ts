import { chmod, mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  clientIdOf,
  decodePublicKey,
  encodePublicKey,
  generateIdentity,
  loadIdentity,
  readAllowlist,
  saveIdentity,
} from "../common/crypto/identity.js";
import { ErrorCode, FedsimError } from "../common/errors.js";

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "fedsim-identity-"));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function refusal(promise: Promise<unknown>): Promise<FedsimError> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(FedsimError);
  return err as FedsimError;
}

describe("identity keys", () => {
  it("derives a stable short client id from the public key", () => {
    const id = generateIdentity();
    expect(clientIdOf(id.publicKey)).toMatch(/^c-[0-9a-f]{16}$/);
    expect(clientIdOf(id.publicKey)).toBe(clientIdOf(Uint8Array.from(id.publicKey)));
    expect(clientIdOf(generateIdentity().publicKey)).not.toBe(clientIdOf(id.publicKey));
  });

  it("round-trips a public key through base64", () => {
    const id = generateIdentity();
    expect(decodePublicKey(encodePublicKey(id.publicKey))).toEqual(id.publicKey);
  });

  it("refuses a base64 string of the wrong length with BAD_PAYLOAD", () => {
    expect(() => decodePublicKey(Buffer.alloc(31).toString("base64"))).toThrowError(
      expect.objectContaining({ code: ErrorCode.BAD_PAYLOAD }),
    );
  });

  it("refuses a non-canonical base64 spelling", () => {
    const encoded = encodePublicKey(generateIdentity().publicKey);
    expect(() => decodePublicKey(`${encoded.slice(0, 10)}!${encoded.slice(10)}`)).toThrowError(FedsimError);
  });
});

describe("identity files", () => {
  it("round-trips through save and load", async () => {
    const id = generateIdentity();
    const path = join(dir, "id.json");
    await saveIdentity(path, id);
    const loaded = await loadIdentity(path);
    expect(loaded.publicKey).toEqual(id.publicKey);
    expect(loaded.secretKey).toEqual(id.secretKey);
  });

  it("writes the file with mode 0600", async () => {
    const path = join(dir, "id.json");
    await saveIdentity(path, generateIdentity());
    expect((await stat(path)).mode & 0o777).toBe(0o600);
  });

  it("writes the documented JSON format", async () => {
    const id = generateIdentity();
    const path = join(dir, "id.json");
    await saveIdentity(path, id);
    const json = JSON.parse(await readFile(path, "utf8"));
    expect(json).toEqual({
      type: "fedsim-identity",
      version: 1,
      publicKey: encodePublicKey(id.publicKey),
      secretKey: Buffer.from(id.secretKey).toString("base64"),
    });
  });

  it("refuses to overwrite an existing file unless asked", async () => {
    const path = join(dir, "id.json");
    const first = generateIdentity();
    await saveIdentity(path, first);
    const err = await refusal(saveIdentity(path, generateIdentity()));
    expect(err.code).toBe(ErrorCode.INVALID_CONFIG);
    expect((await loadIdentity(path)).publicKey).toEqual(first.publicKey);
  });

  it("overwrites with overwrite: true and restores mode 0600", async () => {
    const path = join(dir, "id.json");
    await saveIdentity(path, generateIdentity());
    await chmod(path, 0o644);
    const second = generateIdentity();
    await saveIdentity(path, second, { overwrite: true });
    expect((await stat(path)).mode & 0o777).toBe(0o600);
    expect((await loadIdentity(path)).publicKey).toEqual(second.publicKey);
  });

  it("refuses to load a key file readable by group or others", async () => {
    const path = join(dir, "id.json");
    await saveIdentity(path, generateIdentity());
    await chmod(path, 0o644);
    const err = await refusal(loadIdentity(path));
    expect(err.code).toBe(ErrorCode.INVALID_CONFIG);
    expect(err.message).toContain("0644");
  });

  it("refuses a file whose secret key was tampered with", async () => {
    const path = join(dir, "id.json");
    await saveIdentity(path, generateIdentity());
    const json = JSON.parse(await readFile(path, "utf8"));
    const secret = Buffer.from(json.secretKey, "base64");
    secret[0] ^= 1; // the seed half: nacl's fromSecretKey would not notice this
    json.secretKey = secret.toString("base64");
    await writeFile(path, JSON.stringify(json), { mode: 0o600 });
    const err = await refusal(loadIdentity(path));
    expect(err.code).toBe(ErrorCode.INVALID_CONFIG);
    expect(err.message).toContain("does not match");
  });

  it("refuses a file whose public key was swapped for another", async () => {
    const path = join(dir, "id.json");
    await saveIdentity(path, generateIdentity());
    const json = JSON.parse(await readFile(path, "utf8"));
    json.publicKey = encodePublicKey(generateIdentity().publicKey);
    await writeFile(path, JSON.stringify(json), { mode: 0o600 });
    expect((await refusal(loadIdentity(path))).code).toBe(ErrorCode.INVALID_CONFIG);
  });

  it("refuses a malformed file", async () => {
    const path = join(dir, "id.json");
    await writeFile(path, '{"type":"something-else"}', { mode: 0o600 });
    expect((await refusal(loadIdentity(path))).code).toBe(ErrorCode.INVALID_CONFIG);
  });

  it("refuses a missing file", async () => {
    expect((await refusal(loadIdentity(join(dir, "nope.json")))).code).toBe(ErrorCode.INVALID_CONFIG);
  });
});

describe("allowlist", () => {
  it("parses keys with comments, blank lines and labels", async () => {
    const a = encodePublicKey(generateIdentity().publicKey);
    const b = encodePublicKey(generateIdentity().publicKey);
    const path = join(dir, "allow.txt");
    await writeFile(path, `# coordinator allowlist\n\n${a}\n  ${b}   hospital-b  (ward 3)\r\n# end\n`);
    expect(await readAllowlist(path)).toEqual(new Set([a, b]));
  });

  it("refuses a bad line and names its line number", async () => {
    const a = encodePublicKey(generateIdentity().publicKey);
    const path = join(dir, "allow.txt");
    await writeFile(path, `# keys\n${a} alice\nnot-a-key bob\n`);
    const err = await refusal(readAllowlist(path));
    expect(err.code).toBe(ErrorCode.INVALID_CONFIG);
    expect(err.message).toContain("line 3");
  });
});
