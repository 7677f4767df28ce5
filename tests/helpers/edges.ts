import type { ClientNode, ClientNodeOptions } from "../../client/node.js";
import { type Dataset, subset } from "../../common/data/dataset.js";
import type { AnyStrategy } from "../../common/strategy/async-strategy.js";
import type { CoordinatorHandle, CoordinatorOptions, CoordinatorResult } from "../../server/coordinator.js";
import { type EdgeHandle, startEdge } from "../../server/edges/edge-node.js";
import { smallMnist, startClients, startTestCoordinator } from "./federation.js";

export interface Federation {
  coordinator: CoordinatorHandle;
  edges: EdgeHandle[];
  clients: ClientNode[];
  result: Promise<CoordinatorResult>;
  close(): Promise<void>;
}

/**
 * The same small MNIST federation (clients of unequal sizes), either on one coordinator (redis
 * undefined) or over edges: client i connects to edge i mod edges. With every client sampled, both runs train the same
 * clients on the same data from the same weights, so their models must agree.
 */
export async function startFederation(options: {
  strategy: () => AnyStrategy;
  /** A TestRedis or TestRedisCluster: anything with the URL `--redis` takes. */
  redis?: { url: string };
  /** PEM of the CA of a rediss:// Redis, for the coordinator and every edge. */
  redisCa?: string;
  edges?: number;
  clients?: number;
  rounds?: number;
  /** Where client i connects (default: its edge, or the coordinator); a load balancer's address in fault tests. */
  clientUrl?: (i: number, coordinator: CoordinatorHandle, edges: EdgeHandle[]) => string;
  /** Awaited after the coordinator and in-process edges start, before any client does. */
  beforeClients?: (coordinator: CoordinatorHandle) => Promise<void>;
  onPhase?: CoordinatorOptions["onPhase"];
  onRound?: CoordinatorOptions["onRound"];
  /** More of the coordinator's options (a virtual clock, say). */
  coordinator?: Partial<CoordinatorOptions>;
  /** More of client i's options (a fixed identity, so its id is the same in every run). */
  client?: (i: number) => Partial<ClientNodeOptions>;
  logs?: string[];
}): Promise<Federation> {
  const n = options.clients ?? 4;
  const logs = options.logs ?? [];
  const { parts: even, test } = await smallMnist(n, 60, 200);
  // Unequal sizes, so that weighting by example count is visible in the model.
  const parts = even.map((p, i) =>
    subset(
      p,
      Array.from({ length: Math.min(p.n, 20 + 13 * i) }, (_, k) => k),
    ),
  );
  const coordinator = await startTestCoordinator(
    test as Dataset,
    {
      rounds: options.rounds ?? 2,
      strategy: options.strategy(),
      minAvailableClients: n,
      ...(options.redis
        ? {
            scaleOut: {
              redisUrl: options.redis.url,
              ...(options.redisCa !== undefined ? { redisCa: options.redisCa } : {}),
            },
          }
        : {}),
      ...(options.onPhase ? { onPhase: options.onPhase } : {}),
      ...(options.onRound ? { onRound: options.onRound } : {}),
      ...options.coordinator,
    },
    logs,
  );
  const edges: EdgeHandle[] = [];
  if (options.redis) {
    for (let e = 0; e < (options.edges ?? 2); e++) {
      edges.push(
        await startEdge({
          host: "127.0.0.1",
          port: 0,
          redisUrl: options.redis.url,
          ...(options.redisCa !== undefined ? { redisCa: options.redisCa } : {}),
          coordinatorUrl: coordinator.url,
          edgeId: `edge-${e}`,
          auth: { kind: "open" },
          log: (line) => logs.push(line),
        }),
      );
    }
  }
  await options.beforeClients?.(coordinator);
  const urlOf =
    options.clientUrl ?? ((i: number) => (edges.length > 0 ? edges[i % edges.length].url : coordinator.url));
  const clients = startClients(
    "",
    parts,
    (i) => ({ url: urlOf(i, coordinator, edges), ...options.client?.(i) }),
    logs,
  );
  await Promise.all(clients.map((c) => c.ready));
  const result = coordinator.run();
  return {
    coordinator,
    edges,
    clients,
    result,
    async close() {
      for (const c of clients) c.close();
      await coordinator.close();
      for (const e of edges) await e.close();
    },
  };
}

/** The largest absolute difference between two equally long vectors. */
export function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  if (a.length !== b.length) throw new Error(`lengths differ: ${a.length} vs ${b.length}`);
  let max = 0;
  for (let i = 0; i < a.length; i++) max = Math.max(max, Math.abs(a[i] - b[i]));
  return max;
}
