import { ErrorCode, FedsimError } from "./errors.js";

/** Node's codes for a certificate chain it cannot trust. */
const UNTRUSTED_CHAIN = new Set([
  "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
  "SELF_SIGNED_CERT_IN_CHAIN",
  "DEPTH_ZERO_SELF_SIGNED_CERT",
  "UNABLE_TO_GET_ISSUER_CERT",
  "UNABLE_TO_GET_ISSUER_CERT_LOCALLY",
  "CERT_UNTRUSTED",
  "CERT_SIGNATURE_FAILURE",
  "CERT_HAS_EXPIRED",
  "CERT_NOT_YET_VALID",
]);

/**
 * A TLS_UNTRUSTED error when a connect failed because the server's certificate did not
 * verify, else undefined. The certificate will not change between tries, so the node says what
 * to fix instead of retrying.
 */
export function untrustedCertificate(err: Error, url: string): FedsimError | undefined {
  const cause = (err as { description?: { error?: { code?: unknown; message?: unknown } } }).description
    ?.error;
  const code = typeof cause?.code === "string" ? cause.code : "";
  const detail = `${typeof cause?.message === "string" ? cause.message : code} (${code})`;
  if (code === "ERR_TLS_CERT_ALTNAME_INVALID") {
    return new FedsimError(
      ErrorCode.TLS_UNTRUSTED,
      `the certificate of ${url} does not name the host dialled: ${detail}; dial a name or address its subjectAltName lists, or issue it with this one`,
    );
  }
  if (!UNTRUSTED_CHAIN.has(code)) return undefined;
  return new FedsimError(
    ErrorCode.TLS_UNTRUSTED,
    `the certificate of ${url} is not trusted: ${detail}; pass the CA certificate that signed it with --ca FILE`,
  );
}

/**
 * engine.io reports every transport failure as "websocket error"; the cause that tells a user
 * what to fix (e.g. "self-signed certificate" when the CA is missing) is in `description`.
 */
export function describeConnectError(err: Error): string {
  // Under Node it is ws's ErrorEvent, not an Error: read its message, whatever its class.
  const description = (err as { description?: { message?: unknown } }).description;
  const cause = typeof description?.message === "string" ? description.message : "";
  return cause ? `${err.message}: ${cause}` : err.message;
}
