import {
  completeGraph,
  defaultThreshold,
  type RoutedSharesMessage,
  SecAggClientSession,
  type SecAggGraph,
  SecAggServerSession,
} from "../common/crypto/secagg/index.js";

/** Seeded uint32 vectors, so failures reproduce. */
export function randomVector(length: number, seed: number): Uint32Array {
  const out = new Uint32Array(length);
  let s = seed >>> 0 || 1;
  for (let i = 0; i < length; i++) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    out[i] = s >>> 0;
  }
  return out;
}

export function modSum(vectors: Iterable<Uint32Array>, length: number): Uint32Array {
  const sum = new Uint32Array(length);
  for (const v of vectors) for (let i = 0; i < length; i++) sum[i] += v[i];
  return sum;
}

export interface DrivenRound {
  server: SecAggServerSession;
  clients: Map<string, SecAggClientSession>;
  routed: Record<string, RoutedSharesMessage>;
  threshold: number;
}

/** Runs rounds 0 and 1 by hand, for tests that need to step into rounds 2 and 3 themselves. */
export async function driveThroughShareKeys(
  ids: string[],
  options: { graph?: SecAggGraph; threshold?: number; round?: number } = {},
): Promise<DrivenRound> {
  const graph = options.graph ?? completeGraph(ids);
  const threshold = options.threshold ?? defaultThreshold(ids.length - 1);
  const round = options.round ?? 7;
  const server = new SecAggServerSession({ round, clientIds: ids, graph, threshold });
  const clients = new Map(ids.map((id) => [id, new SecAggClientSession({ clientId: id, round })]));
  for (const [id, client] of clients) server.receiveAdvertiseKeys(id, client.advertiseKeys());
  for (const [id, message] of Object.entries(server.neighbourKeys())) {
    server.receiveShareKeys(id, await clients.get(id)!.shareKeys(message));
  }
  return { server, clients, routed: server.routeShares(), threshold };
}

/** Index of the first differing element, or −1; typed arrays compared without vitest's slow deep equality. */
export function firstDifference(a: Uint32Array, b: Uint32Array): number {
  if (a.length !== b.length) return Math.min(a.length, b.length);
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return i;
  return -1;
}
