import type { Socket } from "socket.io-client";
import { ErrorCode, FedsimError } from "../common/errors.js";

/** How a client node keeps trying to reach its coordinator (`fedsim client --max-retries --max-wait`). */
export interface RetryPolicy {
  /** Consecutive failed tries after which the node gives up; a successful connect starts the count again. */
  maxRetries: number;
  /** The longest wait between two tries, in seconds: the cap on the doubling backoff. */
  maxWaitSeconds: number;
}

/** The first wait; each further one doubles, up to the policy's cap. */
export const FIRST_RETRY_SECONDS = 0.5;

/**
 * Seconds to wait before retry k (1-based): 0.5, 1, 2, 4, … capped at `maxWaitSeconds`. No jitter,
 * so the "retry k/N in T s" line the node prints is the wait it really takes.
 */
export function retryDelaySeconds(retry: number, policy: RetryPolicy): number {
  return Math.min(FIRST_RETRY_SECONDS * 2 ** Math.max(0, retry - 1), policy.maxWaitSeconds);
}

/** The line printed before each retry. */
export function retryLine(retry: number, policy: RetryPolicy, cause: string): string {
  const seconds = retryDelaySeconds(retry, policy);
  return `${cause}; retry ${retry}/${policy.maxRetries} in ${Number(seconds.toFixed(3))} s`;
}

export interface ReconnectHooks {
  /** Dials again (socket.connect()). */
  connect(): void;
  /** False while the node is deliberately offline or closed: nothing is scheduled then. */
  wanted(): boolean;
  log(line: string): void;
  /** Called once, with a COORDINATOR_UNREACHABLE error, when the retries are used up. */
  giveUp(err: FedsimError): void;
}

/**
 * The client node's own reconnect loop, used instead of Socket.IO's when a policy is given: its
 * backoff has random jitter and no "giving up" a caller can see, so neither the wait nor the end
 * could be told to the user truthfully.
 */
export class Reconnector {
  private failures = 0;
  private timer: NodeJS.Timeout | null = null;
  private done = false;

  constructor(
    private readonly url: string,
    private readonly policy: RetryPolicy,
    private readonly hooks: ReconnectHooks,
  ) {}

  /** A connection was made: the next failure is retry 1 again. */
  connected(): void {
    this.failures = 0;
  }

  /** A try failed, or an open connection dropped: schedule the next try, or give up. */
  failed(cause: string): void {
    if (this.done || this.timer || !this.hooks.wanted()) return;
    this.failures++;
    if (this.failures > this.policy.maxRetries) {
      this.done = true;
      const retries = this.policy.maxRetries;
      this.hooks.giveUp(
        new FedsimError(
          ErrorCode.COORDINATOR_UNREACHABLE,
          `gave up on ${this.url} after ${retries} ${retries === 1 ? "retry" : "retries"} (${cause})`,
        ),
      );
      return;
    }
    this.hooks.log(retryLine(this.failures, this.policy, cause));
    this.timer = setTimeout(() => {
      this.timer = null;
      if (this.hooks.wanted()) this.hooks.connect();
    }, retryDelaySeconds(this.failures, this.policy) * 1000);
  }

  /** A failure that retrying cannot mend: give up at once with `err`. */
  fatal(err: FedsimError): void {
    if (this.done) return;
    this.stop();
    this.hooks.giveUp(err);
  }

  /** No more tries (the node closed). */
  stop(): void {
    this.done = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }
}

/**
 * Runs a socket's reconnects through a `Reconnector` (the socket must be made with
 * `reconnection: false`): failed tries and dropped connections schedule the next try; a
 * disconnect this side asked for, or the coordinator's own, does not.
 */
export function reconnectWith(
  socket: Socket,
  url: string,
  policy: RetryPolicy,
  hooks: Omit<ReconnectHooks, "connect">,
): Reconnector {
  const reconnector = new Reconnector(url, policy, { ...hooks, connect: () => socket.connect() });
  socket.on("connect", () => reconnector.connected());
  socket.on("connect_error", (err) => {
    const untrusted = untrustedCertificate(err, url);
    if (untrusted) reconnector.fatal(untrusted);
    else reconnector.failed(`cannot connect: ${describeConnectError(err)}`);
  });
  socket.on("disconnect", (reason) => {
    if (reason !== "io client disconnect" && reason !== "io server disconnect")
      reconnector.failed(`connection lost: ${reason}`);
  });
  return reconnector;
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
 * A TLS_UNTRUSTED error when a connect failed because the coordinator's certificate did not
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
