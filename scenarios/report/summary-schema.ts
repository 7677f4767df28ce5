/**
 * Reading a run's summary.json for reports. The schema is the report's own, lenient about what
 * older runs lack (every newer field optional, `clients` and `failures` in their old number form)
 * and strict about what a chart needs, so a foreign or broken file is refused with its field named.
 */
import { readFile, stat } from "node:fs/promises";
import path from "node:path";
import { z } from "zod";
import { ErrorCode, FedsimError } from "../../common/errors.js";
import { formatZodIssues, safeParseUntrusted } from "../../common/protocol.js";
import { clientDataSchema } from "./client-data.js";
import { runConfigSchema } from "./run-config.js";

/** JSON.stringify writes NaN and ±Infinity as null: a diverged run still has a readable summary. */
const metric = z
  .number()
  .nullable()
  .transform((v) => v ?? Number.NaN);

const count = z.number().int().min(0);

/** Five numbers, mean and count of a per-round distribution (update norms). */
const distributionSchema = z.object({
  count: z.number().int().min(1),
  min: z.number(),
  q1: z.number(),
  median: z.number(),
  q3: z.number(),
  max: z.number(),
  mean: z.number(),
});

const roundSchema = z.object({
  round: z.number().int().min(0),
  accuracy: metric,
  loss: metric,
  participants: count,
  sampled: count.optional(),
  /** Old runs: a total. New runs: by kind (the runner's type allows absent kinds). */
  failures: z.union([count, z.record(z.string(), count.optional())]),
  dropouts: count.optional(),
  /** Over-selected clients called off once enough others had finished: an outcome, not a failure. */
  cancelled: count.optional(),
  /** Clients the scenario had offline this round. */
  offline: count.optional(),
  epsilon: metric.optional(),
  clipNorm: metric.optional(),
  kept: z.string().optional(),
  trainLoss: metric.optional(),
  updateNorms: distributionSchema.optional(),
  bytesSent: z.number().min(0).optional(),
  bytesReceived: z.number().min(0).optional(),
  seconds: z.number().min(0),
  /** Wall seconds from the first round's start to this round's start. */
  startSeconds: z.number().min(0).optional(),
  /** Virtual clock: simulated seconds since the run began at the round's start, and its simulated duration. */
  simulatedStart: z.number().min(0).optional(),
  simulatedSeconds: z.number().min(0).optional(),
  /** Virtual clock: the federated evaluation's and each SecAgg stage's simulated seconds (inside simulatedSeconds). */
  simulatedEvaluationSeconds: z.number().min(0).optional(),
  simulatedStages: z.record(z.string(), z.number().min(0)).optional(),
  /** Asynchronous strategies: staleness τ of the version's updates. */
  staleness: z.object({ mean: z.number().min(0), max: z.number().int().min(0) }).optional(),
  /** Remote pools: which pool hosted how many clients. */
  pools: z.array(z.object({ pool: z.string(), name: z.string(), cores: count, clients: count })).optional(),
});

/** Asynchronous strategies: one aggregated update, with the version it trained on and its staleness. */
const updateEntrySchema = z.object({
  round: z.number().int().min(1),
  clientId: z.string(),
  label: z.string().optional(),
  trainedOn: z.number().int().min(0),
  staleness: z.number().int().min(0),
  weight: z.number().min(0),
  numExamples: count,
  seconds: z.number().min(0),
  simulatedSeconds: z.number().min(0).optional(),
  simulatedArrivedAt: z.number().min(0).optional(),
});

const timelineEntrySchema = z.object({
  round: z.number().int().min(0),
  clientId: z.string(),
  label: z.string().optional(),
  startSeconds: z.number(),
  seconds: z.number().min(0),
  trainSeconds: z.number().min(0).optional(),
  outcome: z.string(),
  /** Virtual clock: simulated seconds since the run began at which the request left and the outcome came. */
  simulatedSentAt: z.number().min(0).optional(),
  simulatedArrivedAt: z.number().min(0).optional(),
});

/** How a run on the virtual clock was simulated (absent on the real clock). */
const virtualClockSchema = z.object({
  fleet: z.string(),
  secondsPerExample: z.number().positive(),
  secondsPerExampleSource: z.enum(["measured", "scenario", "fleet"]),
  startHour: z.number().min(0).max(24),
  deadlineSeconds: z.number().positive(),
  simulatedSeconds: z.number().min(0),
  budgetSeconds: z.number().positive().optional(),
});

export const runSummarySchema = z.object({
  scenario: z.string(),
  backend: z.string(),
  training: z.object({ path: z.string(), reason: z.string().optional() }).optional(),
  strategy: z.string(),
  seed: z.number(),
  clients: z.union([count, z.object({ connected: count, sampledPerRound: count })]),
  config: runConfigSchema.optional(),
  clientData: clientDataSchema.optional(),
  initial: z.object({ accuracy: metric, loss: metric }),
  rounds: z.array(roundSchema),
  final: z.object({
    accuracy: metric,
    loss: metric,
    epsilon: metric.optional(),
    delta: z.number().optional(),
  }),
  seconds: z.number().min(0),
  stopReason: z.string().optional(),
  expectations: z.array(z.object({ name: z.string(), passed: z.boolean(), detail: z.string() })),
  timeline: z.array(timelineEntrySchema).optional(),
  updates: z.array(updateEntrySchema).optional(),
  virtualClock: virtualClockSchema.optional(),
});

/** A summary as a report reads it (null metrics turned into NaN). */
export type ReportSummary = z.output<typeof runSummarySchema>;
/** What a caller may hand over: the runner's RunSummary, old or new, fits here. */
export type ReportSummaryInput = z.input<typeof runSummarySchema>;
export type ReportRound = ReportSummary["rounds"][number];
export type TimelineEntry = NonNullable<ReportSummary["timeline"]>[number];

/** Validates a summary value; `source` names where it came from in the error. */
export function parseRunSummary(value: unknown, source = "run summary"): ReportSummary {
  const parsed = safeParseUntrusted(runSummarySchema, value);
  if (parsed.success) {
    return { ...parsed.data, rounds: [...parsed.data.rounds].sort((a, b) => a.round - b.round) };
  }
  throw new FedsimError(
    ErrorCode.INVALID_CONFIG,
    `${source} is not a fedsim run summary`,
    formatZodIssues(parsed.error, `${source}: `),
  );
}

/** Reads DIR/summary.json, refusing a missing directory, a missing file or a malformed one. */
export async function readRunSummary(dir: string): Promise<ReportSummary> {
  const info = await stat(dir).catch(() => null);
  if (!info) throw new FedsimError(ErrorCode.INVALID_CONFIG, `run directory not found: ${dir}`);
  if (!info.isDirectory()) {
    throw new FedsimError(ErrorCode.INVALID_CONFIG, `not a run directory: ${dir}`, [
      "give the directory that `fedsim run --out DIR` wrote",
    ]);
  }
  const file = path.join(dir, "summary.json");
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch {
    throw new FedsimError(ErrorCode.INVALID_CONFIG, `no summary.json in ${dir}`, [
      `${file} is missing: was the run started with --out ${dir}, and did it finish?`,
    ]);
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new FedsimError(ErrorCode.INVALID_CONFIG, `${file} is not valid JSON`, [
      err instanceof Error ? err.message : String(err),
    ]);
  }
  return parseRunSummary(value, file);
}

/** Clients connected and sampled per round; old summaries only know the number of clients. */
export function clientCounts(summary: ReportSummary): { connected: number; sampledPerRound?: number } {
  return typeof summary.clients === "number" ? { connected: summary.clients } : summary.clients;
}

/** The failure kinds the coordinator reports, in the order charts stack them. */
export const KNOWN_FAILURE_KINDS: readonly string[] = [
  "timeout",
  "disconnect",
  "rejected",
  "error",
  "cancelled",
];
/** Old summaries count failures without a kind. */
export const UNKNOWN_FAILURE_KIND = "failed";

/**
 * Sampled clients that did not contribute, by kind. Cancelled over-selected clients are counted
 * here too (as "cancelled") when the run reports them apart from failures.
 */
export function failuresByKind(round: ReportRound): Record<string, number> {
  if (typeof round.failures === "number") return { [UNKNOWN_FAILURE_KIND]: round.failures };
  const out: Record<string, number> = {};
  for (const [kind, n] of Object.entries(round.failures)) if (n !== undefined) out[kind] = n;
  if (round.cancelled !== undefined && out.cancelled === undefined) out.cancelled = round.cancelled;
  return out;
}

export function totalFailures(round: ReportRound): number {
  return Object.values(failuresByKind(round)).reduce((a, b) => a + b, 0);
}

/** Failure kinds with at least one failure in the run: known kinds first, then the rest by name. */
export function failureKindsPresent(rounds: readonly ReportRound[]): string[] {
  const present = new Set<string>();
  for (const r of rounds) {
    for (const [kind, n] of Object.entries(failuresByKind(r))) if (n > 0) present.add(kind);
  }
  const known = KNOWN_FAILURE_KINDS.filter((k) => present.has(k));
  const rest = [...present].filter((k) => !KNOWN_FAILURE_KINDS.includes(k)).sort();
  return [...known, ...rest];
}

export function hasDp(summary: ReportSummary): boolean {
  return summary.rounds.some((r) => r.epsilon !== undefined);
}
