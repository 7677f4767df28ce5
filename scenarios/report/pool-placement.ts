/** A pool's share of the virtual clients in one round (or version), as summary.json shows it. */
export interface PoolShare {
  /** The pool's id in this run (`p-…`), and the name it gave (its host name by default). */
  pool: string;
  name: string;
  cores: number;
  clients: number;
}

/** A spread of the clients over the pools, made before `round` (an asynchronous run: while building that version). */
export interface PoolAssignment {
  round: number;
  pools: readonly PoolShare[];
}

/** An assignment as the run keeps it: counts only, not the indices (a run may have 100,000 clients). */
export function poolAssignment(event: {
  round: number;
  pools: readonly { id: string; name: string; cores: number; hosted: readonly number[] }[];
}): PoolAssignment {
  return {
    round: event.round,
    pools: event.pools.map((p) => ({ pool: p.id, name: p.name, cores: p.cores, clients: p.hosted.length })),
  };
}

/**
 * Which pool hosted how many clients in each round: the last assignment made at or before it.
 * For a round that is the spread it was sampled from; for an asynchronous version, the spread
 * when it was published. Rounds before any assignment get none.
 */
export function placementByRound(
  assignments: readonly PoolAssignment[],
  rounds: readonly number[],
): Map<number, PoolShare[]> {
  const sorted = [...assignments].sort((a, b) => a.round - b.round);
  const out = new Map<number, PoolShare[]>();
  for (const round of rounds) {
    let last: PoolAssignment | undefined;
    for (const a of sorted) if (a.round <= round) last = a;
    if (!last) continue;
    out.set(round, [...last.pools]);
  }
  return out;
}
