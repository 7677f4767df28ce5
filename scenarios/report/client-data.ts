/**
 * What each simulated client holds: example counts and labels. Only the scenario runner writes
 * this, because it built the partitions; a coordinator never learns it from clients (under DP or
 * SecAgg the example counts are exactly what the protocol keeps from it).
 */
import { z } from "zod";
import type { PartitionTable } from "../../common/data/partition-table.js";

/** Clients whose label counts the report draws one by one; the size histogram covers all. */
export const SHOWN_CLIENTS = 50;
const SIZE_BINS = 20;

export const clientDataSchema = z.object({
  clients: z.number().int().min(0),
  numClasses: z.number().int().min(1),
  sizes: z.object({ min: z.number(), max: z.number(), mean: z.number(), total: z.number() }),
  /** Client sizes in equal-width bins: `edges` has one more entry than `counts`. */
  sizeHistogram: z.object({ edges: z.array(z.number()), counts: z.array(z.number().int().min(0)) }),
  /** Label counts of the first clients (by index); their sum is the client's size. */
  shown: z.array(z.object({ client: z.number().int().min(0), labels: z.array(z.number().int().min(0)) })),
  /** Whether clients share examples (a `sample` partition) rather than split the training set. */
  overlapping: z.boolean().optional(),
});
export type ClientDataSummary = z.infer<typeof clientDataSchema>;

/** Equal-width bins over [min, max]; one bin when every value is the same. */
export function histogram(
  values: ArrayLike<number>,
  bins = SIZE_BINS,
): { edges: number[]; counts: number[] } {
  if (values.length === 0) return { edges: [0, 0], counts: [0] };
  let min = Number.POSITIVE_INFINITY;
  let max = Number.NEGATIVE_INFINITY;
  for (let i = 0; i < values.length; i++) {
    min = Math.min(min, values[i]);
    max = Math.max(max, values[i]);
  }
  if (min === max) return { edges: [min, max], counts: [values.length] };
  const n = Math.max(1, Math.min(bins, Math.ceil(max - min)));
  const width = (max - min) / n;
  const counts = new Array<number>(n).fill(0);
  for (let i = 0; i < values.length; i++) counts[Math.min(n - 1, Math.floor((values[i] - min) / width))] += 1;
  return { edges: Array.from({ length: n + 1 }, (_, i) => min + i * width), counts };
}

/** Sizes of every client and label counts of the first SHOWN_CLIENTS, from the partition table. */
export function summarizeClientData(
  table: PartitionTable,
  labels: Int32Array,
  numClasses: number,
  overlapping = false,
): ClientDataSummary {
  const sizes = new Float64Array(table.numClients);
  let total = 0;
  let min = Number.POSITIVE_INFINITY;
  let max = 0;
  for (let c = 0; c < table.numClients; c++) {
    sizes[c] = table.sizeOf(c);
    total += sizes[c];
    min = Math.min(min, sizes[c]);
    max = Math.max(max, sizes[c]);
  }
  const shown = [];
  for (let c = 0; c < Math.min(SHOWN_CLIENTS, table.numClients); c++) {
    const counts = new Array<number>(numClasses).fill(0);
    for (const i of table.indicesOf(c)) counts[labels[i]] += 1;
    shown.push({ client: c, labels: counts });
  }
  const n = table.numClients;
  return {
    clients: n,
    numClasses,
    sizes: { min: n > 0 ? min : 0, max, mean: n > 0 ? total / n : 0, total },
    sizeHistogram: histogram(sizes),
    shown,
    ...(overlapping ? { overlapping: true } : {}),
  };
}
