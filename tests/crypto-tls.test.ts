import { mkdtemp, rm, stat, writeFile } from "node:fs/promises";
import { createServer, get, type Server } from "node:https";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { isLoopbackHost, loadTlsOptions, makeSelfSignedCert, type TlsOptions } from "../common/crypto/tls.js";
import { ErrorCode, FedsimError } from "../common/errors.js";

let dir: string;
let paths: { certPath: string; keyPath: string };
let tls: TlsOptions;
let server: Server;
let port: number;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "fedsim-tls-"));
  paths = await makeSelfSignedCert(dir);
  tls = await loadTlsOptions({ ...paths, caPath: paths.certPath });
  server = createServer({ cert: tls.cert, key: tls.key }, (_req, res) => res.end("hello over tls"));
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  port = (server.address() as AddressInfo).port;
});

afterAll(async () => {
  await new Promise<void>((resolve) => server.close(() => resolve()));
  await rm(dir, { recursive: true, force: true });
});

/** Always dials 127.0.0.1; the cert is checked against `servername` if given, else against the IP. */
function fetchText(ca: Buffer | undefined, servername?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = get({ host: "127.0.0.1", servername, port, path: "/", ca, agent: false }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (chunk) => {
        body += chunk;
      });
      res.on("end", () => resolve(body));
    });
    req.on("error", reject);
  });
}

async function refusal(promise: Promise<unknown>): Promise<FedsimError> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(FedsimError);
  return err as FedsimError;
}

describe("self-signed TLS", () => {
  it("serves HTTPS that a client trusting the cert as CA can reach", async () => {
    expect(await fetchText(tls.ca)).toBe("hello over tls");
  });

  it("verifies the DNS name localhost", async () => {
    expect(await fetchText(tls.ca, "localhost")).toBe("hello over tls");
  });

  it("fails with a certificate error when the client does not trust the cert", async () => {
    const err = (await fetchText(undefined).then(
      () => undefined,
      (e: unknown) => e,
    )) as NodeJS.ErrnoException | undefined;
    expect(err?.code).toMatch(/SELF_SIGNED|UNABLE_TO_VERIFY|CERT/);
  });

  it("writes the private key with mode 0600", async () => {
    expect((await stat(paths.keyPath)).mode & 0o777).toBe(0o600);
  });
});

describe("loadTlsOptions", () => {
  it("refuses a missing certificate file with INVALID_CONFIG naming it", async () => {
    const missing = join(dir, "missing.pem");
    const err = await refusal(loadTlsOptions({ certPath: missing, keyPath: paths.keyPath }));
    expect(err.code).toBe(ErrorCode.INVALID_CONFIG);
    expect(err.message).toContain(missing);
  });

  it("refuses a file that is not a certificate with INVALID_CONFIG", async () => {
    const junk = join(dir, "junk.pem");
    await writeFile(junk, "not a certificate\n");
    const err = await refusal(loadTlsOptions({ certPath: junk, keyPath: paths.keyPath }));
    expect(err.code).toBe(ErrorCode.INVALID_CONFIG);
  });

  it("refuses a key that does not belong to the certificate", async () => {
    const other = await makeSelfSignedCert(join(dir, "other"));
    const err = await refusal(loadTlsOptions({ certPath: paths.certPath, keyPath: other.keyPath }));
    expect(err.code).toBe(ErrorCode.INVALID_CONFIG);
    expect(err.message).toContain("not the private key");
  });
});

describe("isLoopbackHost", () => {
  it.each(["127.0.0.1", "127.10.0.3", "::1", "[::1]", "0:0:0:0:0:0:0:1", "localhost", "LOCALHOST"])(
    "treats %s as loopback",
    (host) => {
      expect(isLoopbackHost(host)).toBe(true);
    },
  );

  it.each(["0.0.0.0", "::", "", "10.0.0.1", "192.168.1.20", "example.com", "128.0.0.1"])(
    "treats %s as not loopback",
    (host) => {
      expect(isLoopbackHost(host)).toBe(false);
    },
  );
});
