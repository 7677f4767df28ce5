import { ErrorCode, FedsimError } from "../../common/errors.js";

/** A pool as the apportionment sees it: an id and the cores it offers. */
export interface PoolCapacity {
  id: string;
  cores: number;
}

/**
 * Each pool's quota of `clients` virtual clients, in proportion to its cores: the largest
 * remainder method (Hamilton), ties broken by the pools' order, so the quotas sum to `clients`
 * and no pool is more than one client away from its exact share.
 */
export function quotas(clients: number, pools: readonly PoolCapacity[]): number[] {
  if (!Number.isInteger(clients) || clients < 0) {
    throw new FedsimError(ErrorCode.INVALID_CONFIG, `clients must be an integer ≥ 0, got ${clients}`);
  }
  for (const pool of pools) {
    if (!Number.isInteger(pool.cores) || pool.cores < 1) {
      throw new FedsimError(
        ErrorCode.INVALID_CONFIG,
        `pool ${pool.id}: cores must be an integer ≥ 1, got ${pool.cores}`,
      );
    }
  }
  if (pools.length === 0) return [];
  const total = pools.reduce((sum, p) => sum + p.cores, 0);
  const exact = pools.map((p) => (clients * p.cores) / total);
  const out = exact.map(Math.floor);
  let left = clients - out.reduce((a, b) => a + b, 0);
  const byRemainder = exact
    .map((x, k) => ({ k, remainder: x - Math.floor(x) }))
    .sort((a, b) => b.remainder - a.remainder || a.k - b.k);
  for (const { k } of byRemainder) {
    if (left === 0) break;
    out[k]++;
    left--;
  }
  return out;
}

/**
 * Spreads client indices 0..clients-1 over the pools by `quotas`, moving as few clients as it
 * can: a pool keeps its lowest current indices up to its quota, and the clients of pools that
 * left, or beyond a quota, go to the pools still short, lowest index to the first pool in order.
 * `current` maps a client index to the pool hosting it now (pools absent from `pools` have left).
 * `pinned` clients stay with the pool hosting them even beyond its quota (an asynchronous run's
 * fits in flight: moving one would fail it); the pools short of their quota then take fewer, the
 * last in order first, until the pinned clients are free and a later call evens them out.
 * Returns each pool's indices, ascending, by pool id.
 */
export function assignClients(
  clients: number,
  pools: readonly PoolCapacity[],
  current: ReadonlyMap<number, string> = new Map(),
  pinned: ReadonlySet<number> = new Set(),
): Map<string, number[]> {
  const quota = quotas(clients, pools);
  const held = new Map<string, { pinned: number[]; free: number[] }>(
    pools.map((p) => [p.id, { pinned: [], free: [] }]),
  );
  for (let index = 0; index < clients; index++) {
    const owner = current.get(index);
    const mine = owner === undefined ? undefined : held.get(owner);
    if (mine) (pinned.has(index) ? mine.pinned : mine.free).push(index);
  }
  const out = new Map<string, number[]>();
  const kept = new Set<number>();
  pools.forEach((pool, k) => {
    const mine = held.get(pool.id) as { pinned: number[]; free: number[] };
    const keep = [...mine.pinned, ...mine.free.slice(0, Math.max(0, quota[k] - mine.pinned.length))];
    for (const index of keep) kept.add(index);
    out.set(pool.id, keep);
  });
  let next = 0;
  pools.forEach((pool, k) => {
    const mine = out.get(pool.id) as number[];
    while (mine.length < quota[k]) {
      while (kept.has(next)) next++;
      if (next >= clients) break;
      mine.push(next++);
    }
    mine.sort((a, b) => a - b);
  });
  return out;
}

/** What a new assignment changes for one pool: the clients it gives up and the ones it takes. */
export function assignmentChange(
  before: readonly number[],
  after: readonly number[],
): { released: number[]; added: number[] } {
  const was = new Set(before);
  const now = new Set(after);
  return {
    released: before.filter((i) => !now.has(i)),
    added: after.filter((i) => !was.has(i)),
  };
}
