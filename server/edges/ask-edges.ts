import { describeError } from "../../common/errors.js";
import { ADAPTER_REQUEST_TIMEOUT_MS } from "./redis.js";

/** What the servers on the adapter acknowledged, raw, and why some may be missing. */
export interface EdgeAnswers {
  replies: unknown[];
  error?: string;
}

export type AdapterAck = (err: Error | null, replies: unknown[]) => void;

/**
 * Sends one request to every server on the Redis adapter (`emit` calls `io.serverSideEmit(…, ack)`)
 * and settles once, with the replies that came. The adapter drops its own errors (e.g. Redis down
 * while counting servers) without calling back, so a timer of our own turns an outage into an
 * answer with an error instead of a wait that never ends.
 */
export function askEdges(emit: (ack: AdapterAck) => void): Promise<EdgeAnswers> {
  return new Promise((resolve) => {
    let settled = false;
    const settle = (replies: unknown[], error?: string) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve({ replies, ...(error ? { error } : {}) });
    };
    const timer = setTimeout(
      () => settle([], "Redis did not answer (adapter unreachable)"),
      ADAPTER_REQUEST_TIMEOUT_MS + 2_000,
    );
    try {
      emit((err, replies) => settle(replies ?? [], err ? describeError(err) : undefined));
    } catch (err) {
      settle([], describeError(err));
    }
  });
}
