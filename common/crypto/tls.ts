import { execFile } from "node:child_process";
import { createPrivateKey, X509Certificate } from "node:crypto";
import { chmod, mkdir, readFile } from "node:fs/promises";
import { BlockList, isIP, isIPv6 } from "node:net";
import { join } from "node:path";
import { promisify } from "node:util";
import { ErrorCode, FedsimError } from "../errors.js";

/** Helpers for serving HTTPS/WSS: loading PEM files, a throwaway cert for tests, loopback detection. */

export interface TlsPaths {
  certPath: string;
  keyPath: string;
  /** CA bundle clients should trust (e.g. a self-signed cert); omit to use the system store. */
  caPath?: string;
}

/** Ready for https.createServer / tls.connect options. */
export interface TlsOptions {
  cert: Buffer;
  key: Buffer;
  ca?: Buffer;
}

/**
 * Reads and checks the PEM files up front, so a wrong path or a cert/key mix-up is an
 * INVALID_CONFIG naming the file at startup instead of an opaque failure at the first connection.
 */
export async function loadTlsOptions(paths: TlsPaths): Promise<TlsOptions> {
  const cert = await readPem(paths.certPath, "certPath");
  const key = await readPem(paths.keyPath, "keyPath");
  let certificate: X509Certificate;
  try {
    certificate = new X509Certificate(cert);
  } catch (err) {
    throw new FedsimError(
      ErrorCode.INVALID_CONFIG,
      `certPath ${paths.certPath} is not a PEM certificate: ${errMessage(err)}`,
    );
  }
  try {
    if (!certificate.checkPrivateKey(createPrivateKey(key))) {
      throw new FedsimError(
        ErrorCode.INVALID_CONFIG,
        `keyPath ${paths.keyPath} is not the private key of certificate ${paths.certPath}`,
      );
    }
  } catch (err) {
    if (err instanceof FedsimError) throw err;
    throw new FedsimError(
      ErrorCode.INVALID_CONFIG,
      `keyPath ${paths.keyPath} is not an unencrypted PEM private key: ${errMessage(err)}`,
    );
  }
  if (paths.caPath === undefined) return { cert, key };
  const ca = await readPem(paths.caPath, "caPath");
  try {
    new X509Certificate(ca);
  } catch (err) {
    throw new FedsimError(
      ErrorCode.INVALID_CONFIG,
      `caPath ${paths.caPath} is not a PEM certificate: ${errMessage(err)}`,
    );
  }
  return { cert, key, ca };
}

export interface SelfSignedCertOptions {
  /** Subject CN, also added as a DNS subjectAltName. Default "localhost". */
  commonName?: string;
  /** IP subjectAltNames. Default ["127.0.0.1"]. */
  ipSans?: string[];
  /** Validity in days. Default 2: these certs are for tests and local runs. */
  days?: number;
}

/**
 * Makes an ECDSA P-256 self-signed certificate with `openssl req -x509` and writes cert.pem and
 * key.pem (0600) into `dir`. Clients trust it by passing the cert as `ca`.
 */
export async function makeSelfSignedCert(
  dir: string,
  options: SelfSignedCertOptions = {},
): Promise<{ certPath: string; keyPath: string }> {
  const commonName = options.commonName ?? "localhost";
  const ipSans = options.ipSans ?? ["127.0.0.1"];
  const days = options.days ?? 2;
  // These go into openssl's -subj and -addext syntax, where "/", "," and "=" are separators.
  if (!/^[A-Za-z0-9.-]+$/.test(commonName)) {
    throw new FedsimError(ErrorCode.INVALID_CONFIG, `commonName must be a host name, got "${commonName}"`);
  }
  for (const ip of ipSans) {
    if (isIP(ip) === 0) {
      throw new FedsimError(ErrorCode.INVALID_CONFIG, `ipSans must hold IP addresses, got "${ip}"`);
    }
  }
  if (!Number.isInteger(days) || days < 1) {
    throw new FedsimError(ErrorCode.INVALID_CONFIG, `days must be a positive integer, got ${days}`);
  }
  await mkdir(dir, { recursive: true });
  const certPath = join(dir, "cert.pem");
  const keyPath = join(dir, "key.pem");
  const sans = [`DNS:${commonName}`, ...ipSans.map((ip) => `IP:${ip}`)].join(",");
  const args = [
    "req",
    "-x509",
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:prime256v1",
    "-nodes",
    "-days",
    String(days),
    "-subj",
    `/CN=${commonName}`,
    "-addext",
    `subjectAltName=${sans}`,
    "-keyout",
    keyPath,
    "-out",
    certPath,
  ];
  try {
    await promisify(execFile)("openssl", args, { timeout: 30_000 });
  } catch (err) {
    const stderr =
      typeof err === "object" && err !== null && "stderr" in err ? String(err.stderr).trim() : "";
    throw new FedsimError(
      ErrorCode.INVALID_CONFIG,
      `openssl could not make a self-signed certificate: ${stderr || errMessage(err)}`,
      ["makeSelfSignedCert needs OpenSSL 1.1.1 or newer on PATH"],
    );
  }
  await chmod(keyPath, 0o600);
  return { certPath, keyPath };
}

const loopback = new BlockList();
loopback.addSubnet("127.0.0.0", 8, "ipv4");
loopback.addAddress("::1", "ipv6");

/**
 * True for 127.0.0.0/8, ::1 (any spelling, also IPv4-mapped 127.x) and "localhost". Wildcard
 * addresses (0.0.0.0, ::) and empty hosts listen on every interface, so they are not loopback:
 * the coordinator warns when it listens on one of those without TLS.
 */
export function isLoopbackHost(host: string): boolean {
  const bare = host.trim().replace(/^\[(.*)\]$/, "$1");
  if (bare.toLowerCase() === "localhost") return true;
  if (isIP(bare) === 0) return false;
  return loopback.check(bare, isIPv6(bare) ? "ipv6" : "ipv4");
}

async function readPem(path: string, name: string): Promise<Buffer> {
  try {
    return await readFile(path);
  } catch (err) {
    throw new FedsimError(ErrorCode.INVALID_CONFIG, `cannot read ${name} ${path}: ${errMessage(err)}`);
  }
}

function errMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
