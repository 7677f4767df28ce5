import cliProgress from "cli-progress";
import type { FitOutcome } from "../server/client-proxy.js";
import type { RoundRecord } from "../server/round-record.js";
import { formatDuration } from "./report/format.js";

/**
 * Live progress: a bar per round (clients done out of sampled, accuracy, ε) on a TTY, and plain
 * lines otherwise, so CI logs stay readable.
 */
export class RunProgress {
  private bar: cliProgress.SingleBar | null = null;
  private done = 0;
  private lastAccuracy = Number.NaN;
  private lastEpsilon: number | undefined;

  constructor(
    private readonly totalRounds: number,
    private readonly tty: boolean = Boolean(process.stdout.isTTY),
    private readonly write: (line: string) => void = (l) => process.stdout.write(`${l}\n`),
  ) {}

  clientOutcome(round: number, _outcome: FitOutcome, sampled: number): void {
    this.done++;
    if (!this.tty) return;
    if (!this.bar) {
      this.bar = new cliProgress.SingleBar(
        {
          format: `round {round}/${this.totalRounds} [{bar}] {value}/{total} clients | acc {acc}{eps}`,
          hideCursor: true,
          clearOnComplete: true,
        },
        cliProgress.Presets.shades_classic,
      );
      this.bar.start(sampled, 0, { round, acc: this.fmt(this.lastAccuracy), eps: this.epsText() });
    }
    this.bar.update(this.done, { round });
  }

  roundDone(record: RoundRecord): void {
    this.bar?.stop();
    this.bar = null;
    this.done = 0;
    this.lastAccuracy = record.accuracy;
    this.lastEpsilon = record.epsilon;
    const evaluation =
      record.evaluated === false
        ? ["not evaluated"]
        : [`accuracy ${record.accuracy.toFixed(4)}`, `loss ${record.loss.toFixed(4)}`];
    const parts = [
      `round ${record.round}/${this.totalRounds}`,
      ...evaluation,
      `${record.participants}/${record.sampled} clients`,
      ...(record.failures > 0 ? [`${record.failures} failed (${failureKinds(record)})`] : []),
      ...((record.cancelled ?? 0) > 0 ? [`${record.cancelled} over-selected cancelled`] : []),
      ...(record.offline !== undefined ? [`${record.offline} offline`] : []),
      ...(record.epsilon !== undefined ? [`ε ${record.epsilon.toFixed(3)}`] : []),
      ...(record.federated
        ? [`federated accuracy ${record.federated.accuracy.toFixed(4)} (${record.federated.clients} clients)`]
        : []),
      `${record.seconds.toFixed(1)} s`,
      ...(record.simulatedStart !== undefined && record.simulatedSeconds !== undefined
        ? [
            `simulated ${formatDuration(record.simulatedSeconds)}, clock at ${formatDuration(record.simulatedStart + record.simulatedSeconds)}`,
          ]
        : []),
      ...(record.kept ? [`kept previous model: ${record.kept}`] : []),
    ];
    this.write(parts.join(" | "));
  }

  stop(): void {
    this.bar?.stop();
    this.bar = null;
  }

  private fmt(x: number): string {
    return Number.isNaN(x) ? "-" : x.toFixed(3);
  }

  private epsText(): string {
    return this.lastEpsilon !== undefined ? ` | ε ${this.lastEpsilon.toFixed(2)}` : "";
  }
}

function failureKinds(record: RoundRecord): string {
  return Object.entries(record.failuresByKind ?? {})
    .map(([kind, n]) => `${n} ${kind}`)
    .join(", ");
}
