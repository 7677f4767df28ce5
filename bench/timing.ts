/**
 * Small timing helpers shared by the benchmark sections. Every figure in the suite is a ratio
 * against a reference timed in the same process and run, so only relative numbers matter; the
 * median of a few repeats damps the ±15–40% run-to-run noise of a shared 2-core machine.
 */

/** Seconds taken by one call of `fn`. */
export async function timeOnce(fn: () => unknown | Promise<unknown>): Promise<number> {
  const start = performance.now();
  await fn();
  return (performance.now() - start) / 1000;
}

/** Median seconds over `repeats` calls, after `warmups` untimed calls. */
export async function medianSeconds(
  fn: () => unknown | Promise<unknown>,
  options: { repeats: number; warmups?: number },
): Promise<number> {
  for (let i = 0; i < (options.warmups ?? 1); i++) await fn();
  const samples: number[] = [];
  for (let i = 0; i < options.repeats; i++) samples.push(await timeOnce(fn));
  return median(samples);
}

export function median(values: readonly number[]): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

/** Rounds to `digits` significant digits so the JSON stays readable; null stays null. */
export function sig(value: number | null, digits = 4): number | null {
  if (value === null || !Number.isFinite(value)) return null;
  if (value === 0) return 0;
  return Number(value.toPrecision(digits));
}

/** a ÷ b, or null when either is missing or b is zero. */
export function ratio(a: number | null, b: number | null): number | null {
  if (a === null || b === null || !Number.isFinite(a) || !Number.isFinite(b) || b === 0) return null;
  return a / b;
}

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message.split("\n", 1)[0] : String(err);
}

/**
 * Median seconds of each candidate, timed in interleaved rounds after one untimed round: when the
 * load of a shared machine drifts, every candidate sees the same drift, which keeps ratios honest.
 */
export async function interleavedMedians<K extends string>(
  candidates: Record<K, () => unknown | Promise<unknown>>,
  repeats: number,
): Promise<Record<K, number>> {
  const names = Object.keys(candidates) as K[];
  const samples = Object.fromEntries(names.map((name) => [name, [] as number[]])) as Record<K, number[]>;
  for (let round = 0; round <= repeats; round++) {
    for (const name of names) {
      const seconds = await timeOnce(candidates[name]);
      if (round > 0) samples[name].push(seconds);
    }
  }
  return Object.fromEntries(names.map((name) => [name, median(samples[name])])) as Record<K, number>;
}

/** One process's timed run: examples trained and its wall-clock window (ms since the epoch). */
export interface TimedRun {
  examples: number;
  start: number;
  end: number;
  /** CPU seconds the process used meanwhile (all threads), when known. */
  cpuSeconds?: number;
}

/** A training process that answers "train this many steps" with its timed run (fedsim's or PyTorch's). */
export interface TrainingProcess {
  run(steps: number, seed: number): Promise<TimedRun>;
}
