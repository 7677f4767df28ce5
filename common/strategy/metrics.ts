/**
 * Metric aggregation, as Flower's `fit_metrics_aggregation_fn`: a function the user passes to a
 * strategy turns the clients' reported metrics into the round's. Pure: no sockets, no tfjs.
 */

/** One client's reported metrics, with the example count it trained (or evaluated) on. */
export interface MetricsResult {
  clientId: string;
  numExamples: number;
  metrics: Readonly<Record<string, number>>;
}

export type MetricsAggregationFn = (results: readonly MetricsResult[]) => Record<string, number>;

/**
 * The example-weighted mean of each metric, over the clients that reported it; `names` limits it
 * to those metrics. A metric nobody reported is left out rather than reported as 0.
 */
export function weightedAverage(names?: readonly string[]): MetricsAggregationFn {
  return (results) => {
    const sums = new Map<string, { total: number; weight: number }>();
    for (const r of results) {
      if (!(r.numExamples > 0)) continue;
      for (const [name, value] of Object.entries(r.metrics)) {
        if (names !== undefined && !names.includes(name)) continue;
        if (!Number.isFinite(value)) continue;
        const sum = sums.get(name) ?? { total: 0, weight: 0 };
        sum.total += value * r.numExamples;
        sum.weight += r.numExamples;
        sums.set(name, sum);
      }
    }
    const out: Record<string, number> = {};
    for (const [name, { total, weight }] of sums) out[name] = total / weight;
    return out;
  };
}
