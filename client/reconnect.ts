import type { Socket } from "socket.io-client";
import { describeConnectError, untrustedCertificate } from "../common/connect-errors.js";
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
