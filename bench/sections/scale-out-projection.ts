/**
 * The coordinator's ingress per round is a fixed part (per edge: its partial sum and link
 * requests) plus a part per client (its upload without edges, its outcome message with them).
 * Two real rounds of different sizes give both parts; the line through them projects the round
 * to any number of clients. Pure, so tests/bench-scale-out.test.ts checks it directly.
 */
export interface IngressLine {
  /** Bytes per additional client. */
  perClientBytes: number;
  /** Bytes that do not depend on the number of clients. */
  fixedBytes: number;
}

/** The line through two (clients, bytes) measurements with different client counts. */
export function ingressLine(
  a: { clients: number; bytes: number },
  b: { clients: number; bytes: number },
): IngressLine {
  if (a.clients === b.clients) throw new Error("two different client counts are needed to fit a line");
  const perClientBytes = (b.bytes - a.bytes) / (b.clients - a.clients);
  return { perClientBytes, fixedBytes: a.bytes - perClientBytes * a.clients };
}

export function projectIngress(line: IngressLine, clients: number): number {
  return Math.round(line.fixedBytes + line.perClientBytes * clients);
}
