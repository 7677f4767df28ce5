import { ErrorCode, FedsimError } from "../../errors.js";
import { maskedSum } from "../../strategy/partial-sum.js";
import { SecAggClientSession } from "./client.js";
import { completeGraph, defaultThreshold, type SecAggGraph, secAggPlusGraph } from "./graph.js";
import { bytesToVector } from "./messages.js";
import { SecAggServerSession } from "./server.js";

/**
 * One SecAgg round with every party in this process: the executable description of the message
 * order a transport must follow. Each message goes through `overWire`, which copies it the way
 * Socket.IO delivers it to Node (binaries become Buffers, possibly at unaligned offsets).
 *
 *   client.advertiseKeys()        → server.receiveAdvertiseKeys   (round 0, U0)
 *   server.neighbourKeys()[id]    → client.shareKeys              → server.receiveShareKeys (round 1, U1)
 *   server.routeShares()[id]      → client.maskedInput(…, x)      → server.receiveMaskedInput (round 2, U2)
 *   server.unmaskRequests()[id]   → client.unmask                 → server.receiveUnmaskResponse (round 3)
 *   server.unmask()               → Σ_{U2} x  (mod 2^32)
 *
 * With `groups` (edges, docs/SCALE-OUT.md) each group's masked inputs are added mod 2^32 where
 * they arrived, and the server takes one masked sum per group (receiveMaskedSum) instead.
 */

export interface InMemorySecAggOptions {
  graph: "complete" | "secagg+";
  /** Clients that share keys and then vanish before sending their masked input. */
  dropAfterShareKeys?: string[];
  /** Clients that send their masked input and then vanish before answering the unmask request. */
  dropBeforeUnmask?: string[];
  /** Disjoint groups of clients whose masked inputs are summed before the server sees them. */
  groups?: string[][];
  /** Default: defaultThreshold(smallest degree in the graph). */
  threshold?: number;
  /** SecAgg+ degree; default as secAggPlusGraph. */
  degree?: number;
  /** Seed of the SecAgg+ graph; default 0. */
  graphSeed?: number;
  round?: number;
}

export async function runSecAggInMemory(
  inputs: Map<string, Uint32Array>,
  options: InMemorySecAggOptions,
): Promise<Uint32Array> {
  const ids = [...inputs.keys()];
  const round = options.round ?? 0;
  const dropped = new Set(options.dropAfterShareKeys ?? []);
  const silent = new Set(options.dropBeforeUnmask ?? []);
  for (const id of [...dropped, ...silent, ...(options.groups ?? []).flat()]) {
    if (!inputs.has(id)) throw new FedsimError(ErrorCode.INVALID_CONFIG, `unknown client ${id}`);
  }
  const groupOf = new Map((options.groups ?? []).flatMap((g, k) => g.map((id) => [id, k] as const)));
  const grouped = (options.groups ?? []).map(() => ({ ids: [] as string[], vectors: [] as Uint32Array[] }));
  const graph = buildGraph(ids, options);
  const minDegree = Math.min(...Object.values(graph).map((neighbours) => neighbours.length));
  const threshold = options.threshold ?? defaultThreshold(minDegree);
  const server = new SecAggServerSession({ round, clientIds: ids, graph, threshold });
  const clients = new Map(ids.map((id) => [id, new SecAggClientSession({ clientId: id, round })]));
  try {
    for (const [id, client] of clients) server.receiveAdvertiseKeys(id, overWire(client.advertiseKeys()));

    for (const [id, message] of Object.entries(server.neighbourKeys())) {
      const reply = await clients.get(id)!.shareKeys(overWire(message));
      server.receiveShareKeys(id, overWire(reply));
    }

    for (const [id, message] of Object.entries(server.routeShares())) {
      if (dropped.has(id)) {
        clients.get(id)!.close();
        continue;
      }
      const reply = overWire(clients.get(id)!.maskedInput(overWire(message), inputs.get(id)!));
      const group = grouped[groupOf.get(id) ?? -1];
      if (!group) server.receiveMaskedInput(id, reply);
      else {
        group.ids.push(id);
        group.vectors.push(bytesToVector(reply.masked));
      }
    }
    for (const group of grouped) {
      if (group.ids.length > 0) server.receiveMaskedSum(group.ids, maskedSum(group.vectors));
    }

    for (const [id, message] of Object.entries(server.unmaskRequests())) {
      if (silent.has(id)) continue;
      server.receiveUnmaskResponse(id, overWire(clients.get(id)!.unmask(overWire(message))));
    }
    return await server.unmask();
  } finally {
    for (const client of clients.values()) client.close();
    server.close();
  }
}

function buildGraph(ids: string[], options: InMemorySecAggOptions): SecAggGraph {
  if (options.graph === "complete") return completeGraph(ids);
  if (options.graph === "secagg+") {
    return secAggPlusGraph(ids, { seed: options.graphSeed ?? 0, degree: options.degree });
  }
  throw new FedsimError(
    ErrorCode.INVALID_CONFIG,
    `graph must be "complete" or "secagg+" (got ${options.graph})`,
  );
}

/**
 * A deep copy as a Socket.IO peer on Node would receive it: plain objects and arrays rebuilt,
 * every Uint8Array turned into a Buffer that starts one byte into a larger allocation, so that
 * receivers must not assume alignment or ownership.
 */
export function overWire<T>(value: T): T {
  if (value instanceof Uint8Array) {
    const pool = Buffer.alloc(value.length + 1);
    pool.set(value, 1);
    return pool.subarray(1) as unknown as T;
  }
  if (Array.isArray(value)) return value.map((item) => overWire(item)) as unknown as T;
  if (value !== null && typeof value === "object") {
    const out: Record<string, unknown> = {};
    for (const [key, item] of Object.entries(value)) out[key] = overWire(item);
    return out as T;
  }
  return value;
}
