import { createHash, timingSafeEqual } from "node:crypto";
import { open, readFile } from "node:fs/promises";
import nacl from "tweetnacl";
import { z } from "zod";
import { ErrorCode, FedsimError } from "../errors.js";
import { keyPairFromSeed, SEED_BYTES } from "./ed25519.js";

/**
 * A client's long-lived signing identity (ed25519, nacl.sign). The public key is what the
 * coordinator puts on its allowlist; the client id is derived from it so nobody can claim an id
 * they hold no key for.
 */
export interface Identity {
  /** ed25519 public key, 32 bytes. */
  publicKey: Uint8Array;
  /** nacl's ed25519 secret key: 32-byte seed followed by the public key, 64 bytes. */
  secretKey: Uint8Array;
}

export const PUBLIC_KEY_BYTES = nacl.sign.publicKeyLength;
export const SECRET_KEY_BYTES = nacl.sign.secretKeyLength;
const IDENTITY_FILE_TYPE = "fedsim-identity";
const IDENTITY_FILE_VERSION = 1;
/** Same rule as ssh: a private key readable by group or others is refused. */
const GROUP_OR_OTHER_BITS = 0o077;

export function generateIdentity(): Identity {
  const pair = nacl.sign.keyPair();
  return { publicKey: pair.publicKey, secretKey: pair.secretKey };
}

/** Stable short id, e.g. "c-1f0a9c33d2e47b86": what logs, metrics and the registry call this client. */
export function clientIdOf(publicKey: Uint8Array): string {
  requireLength(publicKey, PUBLIC_KEY_BYTES, "publicKey");
  return `c-${createHash("sha256").update(publicKey).digest("hex").slice(0, 16)}`;
}

export function encodePublicKey(publicKey: Uint8Array): string {
  requireLength(publicKey, PUBLIC_KEY_BYTES, "publicKey");
  return Buffer.from(publicKey).toString("base64");
}

/** Strict inverse of encodePublicKey: canonical base64 of exactly 32 bytes, else BAD_PAYLOAD. */
export function decodePublicKey(encoded: string): Uint8Array {
  return decodeBase64Exact(encoded, PUBLIC_KEY_BYTES, "publicKey");
}

/**
 * Canonical base64 of exactly `length` bytes. Buffer.from(..., "base64") silently skips junk, so
 * the decoded bytes are re-encoded and compared: two spellings of one key must not both pass.
 */
export function decodeBase64Exact(encoded: string, length: number, name: string): Uint8Array {
  const bytes = Buffer.from(encoded, "base64");
  if (bytes.length !== length || bytes.toString("base64") !== encoded) {
    throw new FedsimError(
      ErrorCode.BAD_PAYLOAD,
      `${name} must be standard base64 of exactly ${length} bytes (${base64Length(length)} characters)`,
    );
  }
  // Copy out: small Buffers are slices of a shared pool, no place for a secret key to live.
  return new Uint8Array(bytes);
}

export interface SaveIdentityOptions {
  /** Replace an existing file. Default false: losing a key silently would lock the client out. */
  overwrite?: boolean;
}

/**
 * Writes the JSON key file with mode 0600. The mode is set on the open handle before the secret is
 * written (open's mode is masked by umask and ignored for an existing file), so the secret is
 * never on disk with looser permissions.
 */
export async function saveIdentity(
  path: string,
  identity: Identity,
  options: SaveIdentityOptions = {},
): Promise<void> {
  const overwrite = options.overwrite ?? false;
  checkIdentityMatches(identity.publicKey, identity.secretKey, "identity");
  const body = `${JSON.stringify(
    {
      type: IDENTITY_FILE_TYPE,
      version: IDENTITY_FILE_VERSION,
      publicKey: encodePublicKey(identity.publicKey),
      secretKey: Buffer.from(identity.secretKey).toString("base64"),
    },
    null,
    2,
  )}\n`;
  let handle: Awaited<ReturnType<typeof open>>;
  try {
    handle = await open(path, overwrite ? "w" : "wx", 0o600);
  } catch (err) {
    if (errnoCode(err) === "EEXIST") {
      throw new FedsimError(
        ErrorCode.INVALID_CONFIG,
        `identity file ${path} already exists; refusing to overwrite it`,
        ["pass overwrite: true (fedsim keygen --force) to replace it; the old key is lost"],
      );
    }
    throw new FedsimError(
      ErrorCode.INVALID_CONFIG,
      `cannot create identity file ${path}: ${errMessage(err)}`,
    );
  }
  try {
    await handle.chmod(0o600);
    await handle.writeFile(body, "utf8");
    await handle.sync();
  } finally {
    await handle.close();
  }
}

const identityFileSchema = z.object({
  type: z.literal(IDENTITY_FILE_TYPE),
  version: z.literal(IDENTITY_FILE_VERSION),
  publicKey: z.string(),
  secretKey: z.string(),
});

/**
 * Loads and checks a key file. Every refusal is INVALID_CONFIG: a loose mode, a malformed file or a
 * mismatched key pair is a problem in the operator's local setup to fix, not a peer being refused
 * (UNAUTHORIZED is kept for the coordinator refusing a handshake).
 */
export async function loadIdentity(path: string): Promise<Identity> {
  let text: string;
  let mode: number;
  let handle: Awaited<ReturnType<typeof open>>;
  try {
    handle = await open(path, "r");
  } catch (err) {
    throw new FedsimError(ErrorCode.INVALID_CONFIG, `cannot read identity file ${path}: ${errMessage(err)}`, [
      "create one with: fedsim keygen --out PATH",
    ]);
  }
  try {
    // Stat and read through one handle, so the mode checked is the mode of the bytes read.
    mode = (await handle.stat()).mode;
    text = await handle.readFile("utf8");
  } finally {
    await handle.close();
  }
  if (process.platform !== "win32" && (mode & GROUP_OR_OTHER_BITS) !== 0) {
    const octal = (mode & 0o777).toString(8).padStart(4, "0");
    throw new FedsimError(
      ErrorCode.INVALID_CONFIG,
      `identity file ${path} has mode ${octal}: a secret key must not be accessible by group or others`,
      [`fix it with: chmod 600 ${path}`],
    );
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new FedsimError(ErrorCode.INVALID_CONFIG, `identity file ${path} is not valid JSON`);
  }
  const parsed = identityFileSchema.safeParse(json);
  if (!parsed.success) {
    throw new FedsimError(
      ErrorCode.INVALID_CONFIG,
      `identity file ${path} is not a fedsim identity (version ${IDENTITY_FILE_VERSION})`,
      parsed.error.issues.map((i) => `${i.path.join(".") || "(root)"}: ${i.message}`),
    );
  }
  let publicKey: Uint8Array;
  let secretKey: Uint8Array;
  try {
    publicKey = decodePublicKey(parsed.data.publicKey);
    secretKey = decodeBase64Exact(parsed.data.secretKey, SECRET_KEY_BYTES, "secretKey");
  } catch (err) {
    throw new FedsimError(ErrorCode.INVALID_CONFIG, `identity file ${path}: ${errMessage(err)}`);
  }
  checkIdentityMatches(publicKey, secretKey, `identity file ${path}`);
  return { publicKey, secretKey };
}

/**
 * The public key must be the one the seed generates. nacl's keyPair.fromSecretKey only slices the
 * stored copy of the public key, so it would accept a tampered seed; regenerate from the seed instead.
 */
function checkIdentityMatches(publicKey: Uint8Array, secretKey: Uint8Array, where: string): void {
  requireLength(publicKey, PUBLIC_KEY_BYTES, `${where}.publicKey`, ErrorCode.INVALID_CONFIG);
  requireLength(secretKey, SECRET_KEY_BYTES, `${where}.secretKey`, ErrorCode.INVALID_CONFIG);
  const derived = keyPairFromSeed(secretKey.subarray(0, SEED_BYTES));
  if (!timingSafeEqual(derived.publicKey, publicKey) || !timingSafeEqual(derived.secretKey, secretKey)) {
    throw new FedsimError(ErrorCode.INVALID_CONFIG, `${where}: secret key does not match public key`);
  }
}

/**
 * Reads the coordinator's allowlist: one base64 public key per line, optionally followed by
 * whitespace and a free-text label; `#` comment lines and blank lines are skipped. Keys come back
 * in canonical encoding so membership tests compare like with like.
 */
export async function readAllowlist(path: string): Promise<Set<string>> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (err) {
    throw new FedsimError(ErrorCode.INVALID_CONFIG, `cannot read allowlist ${path}: ${errMessage(err)}`);
  }
  return parseAllowlist(text, path);
}

/** The pure half of readAllowlist; `source` names the file in errors. */
export function parseAllowlist(text: string, source = "allowlist"): Set<string> {
  const keys = new Set<string>();
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i].trim();
    if (line === "" || line.startsWith("#")) continue;
    const token = line.split(/\s+/, 1)[0];
    try {
      keys.add(encodePublicKey(decodePublicKey(token)));
    } catch {
      throw new FedsimError(
        ErrorCode.INVALID_CONFIG,
        `${source} line ${i + 1}: expected a base64 ed25519 public key (${base64Length(PUBLIC_KEY_BYTES)} characters), got "${truncate(token, 60)}"`,
        ["each line is: <base64 public key> [label], as printed by fedsim keygen"],
      );
    }
  }
  return keys;
}

function requireLength(
  bytes: Uint8Array,
  length: number,
  name: string,
  code: ErrorCode = ErrorCode.BAD_PAYLOAD,
): void {
  if (!(bytes instanceof Uint8Array) || bytes.length !== length) {
    const got = bytes instanceof Uint8Array ? `${bytes.length} bytes` : typeof bytes;
    throw new FedsimError(code, `${name} must be ${length} bytes, got ${got}`);
  }
}

function base64Length(bytes: number): number {
  return 4 * Math.ceil(bytes / 3);
}

function truncate(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max)}…`;
}

function errnoCode(err: unknown): string | undefined {
  return typeof err === "object" && err !== null && "code" in err ? String(err.code) : undefined;
}

function errMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
