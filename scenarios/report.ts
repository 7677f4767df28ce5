import type { RoundRecord } from "../server/round-loop.js";
import type { Scenario } from "./schema.js";

export interface SummaryRound {
  round: number;
  accuracy: number;
  loss: number;
  participants: number;
  failures: number;
  seconds: number;
  epsilon?: number;
  clipNorm?: number;
  kept?: string;
}

export interface RunSummary {
  scenario: string;
  backend: string;
  strategy: string;
  seed: number;
  clients: number;
  initial: { accuracy: number; loss: number };
  rounds: SummaryRound[];
  final: { accuracy: number; loss: number; epsilon?: number; delta?: number };
  seconds: number;
  stopReason?: string;
  expectations: { name: string; passed: boolean; detail: string }[];
}

export function summaryRound(r: RoundRecord): SummaryRound {
  return {
    round: r.round,
    accuracy: r.accuracy,
    loss: r.loss,
    participants: r.participants,
    failures: r.failures,
    seconds: r.seconds,
    ...(r.epsilon !== undefined ? { epsilon: r.epsilon } : {}),
    ...(r.clipNorm !== undefined ? { clipNorm: r.clipNorm } : {}),
    ...(r.kept ? { kept: r.kept } : {}),
  };
}

/** Checks the scenario's `expect` block against the run. */
export function checkExpectations(
  scenario: Scenario,
  final: { accuracy: number; epsilon?: number },
): RunSummary["expectations"] {
  const out: RunSummary["expectations"] = [];
  const check = (
    name: string,
    value: number | undefined,
    bound: { gte?: number; lte?: number } | undefined,
  ) => {
    if (!bound) return;
    if (value === undefined) {
      out.push({ name, passed: false, detail: `${name} was not measured` });
      return;
    }
    if (bound.gte !== undefined) {
      out.push({ name, passed: value >= bound.gte, detail: `${name} ${value.toFixed(4)} ≥ ${bound.gte}` });
    }
    if (bound.lte !== undefined) {
      out.push({ name, passed: value <= bound.lte, detail: `${name} ${value.toFixed(4)} ≤ ${bound.lte}` });
    }
  };
  check("finalAccuracy", final.accuracy, scenario.expect?.finalAccuracy);
  check("epsilon", final.epsilon, scenario.expect?.epsilon);
  return out;
}

/** The per-round table printed at the end of a run. */
export function formatTable(rounds: readonly SummaryRound[], withEpsilon: boolean): string {
  const header = [
    "round",
    "accuracy",
    "loss",
    "participants",
    "failures",
    "seconds",
    ...(withEpsilon ? ["epsilon"] : []),
  ];
  const rows = rounds.map((r) => [
    String(r.round),
    r.accuracy.toFixed(4),
    r.loss.toFixed(4),
    String(r.participants),
    String(r.failures),
    r.seconds.toFixed(1),
    ...(withEpsilon ? [r.epsilon !== undefined ? r.epsilon.toFixed(3) : "-"] : []),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i].length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padStart(widths[i])).join("  ");
  return [line(header), line(widths.map((w) => "-".repeat(w))), ...rows.map(line)].join("\n");
}
