/** The part of an engine.io connection that says whether its queued packets reached the transport. */
export interface DrainingConnection {
  writeBuffer: unknown[];
  once(event: "drain", listener: () => void): unknown;
}

/**
 * Resolves once every connection has handed its queued packets to its transport, or after
 * `capMs`. A transport still busy with an earlier frame (TLS writes finish later) keeps new
 * packets in engine.io's buffer, which closing the server discards: a goodbye sent just before
 * would be lost, and the client would take the closed connection for a failure and retry.
 */
export function whenDrained(connections: readonly DrainingConnection[], capMs: number): Promise<void> {
  const pending = connections.filter((c) => c.writeBuffer.length > 0);
  if (pending.length === 0) return Promise.resolve();
  return new Promise((resolve) => {
    let left = pending.length;
    const timer = setTimeout(resolve, capMs);
    for (const c of pending) {
      c.once("drain", () => {
        left--;
        if (left === 0) {
          clearTimeout(timer);
          resolve();
        }
      });
    }
  });
}
