import { Counter, Gauge, Histogram, Registry } from "prom-client";
import { FAILURE_REASONS } from "../../common/strategy/strategy.js";
import type { RoundRecord } from "../round-record.js";

/** Round durations span a tiny model on loopback to a phone fleet's hour-long deadline. */
const ROUND_SECONDS_BUCKETS = [0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600];

/**
 * The coordinator's Prometheus metrics, in a registry of its own: several coordinators in one
 * process (tests, sweeps) never share or clash over a metric. Fed from round records, so the
 * counts are exactly what metrics.jsonl says; counters start at zero with the process, as
 * Prometheus expects, also after a resume.
 */
export class CoordinatorMetrics {
  readonly registry = new Registry();
  private readonly rounds: Counter;
  private readonly roundsKept: Counter;
  private readonly lastRound: Gauge;
  private readonly participants: Gauge;
  private readonly sampled: Gauge;
  private readonly updates: Counter;
  private readonly failures: Counter<"kind">;
  private readonly bytesSent: Counter;
  private readonly bytesReceived: Counter;
  private readonly duration: Histogram;
  /** Over edges only (docs/SCALE-OUT.md): none of these exists on a coordinator without them. */
  private edgeIngress: Counter | null = null;
  /** Created at the first record that has them, so a scrape never shows a made-up 0. */
  private readonly accuracy: LazyGauge;
  private readonly loss: LazyGauge;
  private readonly epsilon: LazyGauge;

  constructor(connectedClients: () => number) {
    const registers = [this.registry];
    this.rounds = new Counter({
      name: "fedsim_rounds_total",
      help: "Rounds completed, including those that kept the previous model",
      registers,
    });
    this.roundsKept = new Counter({
      name: "fedsim_rounds_kept_total",
      help: "Rounds that kept the previous model (too few results, refused aggregate, ...)",
      registers,
    });
    this.lastRound = new Gauge({
      name: "fedsim_round",
      help: "Number of the last completed round",
      registers,
    });
    this.participants = new Gauge({
      name: "fedsim_round_participants",
      help: "Clients whose update the last round aggregated",
      registers,
    });
    this.sampled = new Gauge({
      name: "fedsim_round_sampled",
      help: "Clients the last round sampled (over-selected ones included)",
      registers,
    });
    this.updates = new Counter({
      name: "fedsim_participants_total",
      help: "Client updates aggregated, summed over rounds",
      registers,
    });
    this.failures = new Counter({
      name: "fedsim_client_failures_total",
      help: "Sampled clients that contributed nothing, by kind (over-selection's cancels are not failures)",
      labelNames: ["kind"],
      registers,
    });
    for (const kind of FAILURE_REASONS) if (kind !== "cancelled") this.failures.inc({ kind }, 0);
    this.bytesSent = new Counter({
      name: "fedsim_bytes_sent_total",
      help: "Payload bytes of fit requests sent to sampled clients",
      registers,
    });
    this.bytesReceived = new Counter({
      name: "fedsim_bytes_received_total",
      help: "Payload bytes of fit replies received from sampled clients",
      registers,
    });
    this.duration = new Histogram({
      name: "fedsim_round_duration_seconds",
      help: "Wall-clock duration of a round, from waiting for clients to its record",
      buckets: ROUND_SECONDS_BUCKETS,
      registers,
    });
    this.accuracy = new LazyGauge(
      this.registry,
      "fedsim_accuracy",
      "Centralised test accuracy of the global model after the last round",
    );
    this.loss = new LazyGauge(
      this.registry,
      "fedsim_loss",
      "Centralised test loss of the global model after the last round",
    );
    this.epsilon = new LazyGauge(
      this.registry,
      "fedsim_epsilon",
      "Privacy spent so far (epsilon at the run's delta); absent without DP",
    );
    new Gauge({
      name: "fedsim_connected_clients",
      help: "Clients connected to the coordinator now, on its edges included",
      registers,
      collect() {
        this.set(connectedClients());
      },
    });
  }

  /**
   * A coordinator over edges: the edges linked now and the clients each holds, read at scrape
   * time, and the bytes the edges' links brought in, from the round records.
   */
  watchEdges(clientsPerEdge: () => Map<string, number>): void {
    const registers = [this.registry];
    new Gauge({
      name: "fedsim_edges_linked",
      help: "Edges whose direct link to the coordinator is up now",
      registers,
      collect() {
        this.set(clientsPerEdge().size);
      },
    });
    new Gauge({
      name: "fedsim_edge_clients",
      help: "Clients each linked edge holds, as of its last roster",
      labelNames: ["edge"],
      registers,
      collect() {
        this.reset();
        for (const [edge, clients] of clientsPerEdge()) this.set({ edge }, clients);
      },
    });
    this.edgeIngress = new Counter({
      name: "fedsim_edge_ingress_bytes_total",
      help: "Bytes the coordinator received over its edges' links (partial sums, outcomes, forwarded updates)",
      registers,
    });
  }

  roundDone(record: RoundRecord): void {
    this.rounds.inc();
    if (record.edgeIngressBytes !== undefined) this.edgeIngress?.inc(record.edgeIngressBytes);
    if (record.kept !== undefined) this.roundsKept.inc();
    this.lastRound.set(record.round);
    this.participants.set(record.participants);
    this.sampled.set(record.sampled);
    this.updates.inc(record.participants);
    for (const [kind, count] of Object.entries(record.failuresByKind)) {
      if (count !== undefined && count > 0) this.failures.inc({ kind }, count);
    }
    this.bytesSent.inc(record.bytesSent);
    this.bytesReceived.inc(record.bytesReceived);
    this.duration.observe(record.seconds);
    this.accuracy.set(record.accuracy);
    this.loss.set(record.loss);
    if (record.epsilon !== undefined) this.epsilon.set(record.epsilon);
  }

  /** The exposition text, as Prometheus scrapes it. */
  text(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}

class LazyGauge {
  private gauge: Gauge | null = null;

  constructor(
    private readonly registry: Registry,
    private readonly name: string,
    private readonly help: string,
  ) {}

  set(value: number): void {
    this.gauge ??= new Gauge({ name: this.name, help: this.help, registers: [this.registry] });
    this.gauge.set(value);
  }
}
