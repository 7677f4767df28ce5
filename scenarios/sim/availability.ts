import { z } from "zod";
import { ErrorCode, FedsimError } from "../../common/errors.js";
import { createRng, deriveSeed, sampleWithoutReplacement } from "../../common/rng.js";

/**
 * Which virtual clients are online in which round: a pattern (always, or a diurnal cycle with a
 * per-client phase) combined with an explicit schedule of disconnects and rejoins. Everything is
 * a pure function of the scenario's seed, so every pool process and the runner agree on who is
 * online without talking to each other. Rounds are 1-based, as in the round loop.
 */
const nonnegativeInt = z.number().int().nonnegative();
const round = z.number().int().positive();
const probability = z.number().min(0).max(1);

const patternSchema = z.discriminatedUnion("kind", [
  z.object({ kind: z.literal("always") }).strict(),
  /**
   * P(online in round r) = minOnline + (maxOnline − minOnline)·(1 + cos 2π((r − 1)/periodRounds + φ))/2,
   * with a coin per client and round. Each client's phase φ is drawn uniformly from
   * [0, phaseSpread): 0 puts every client in step (the online fraction swings between min and
   * max); 1 spreads them over the whole period (a steady fraction, changing members).
   */
  z
    .object({
      kind: z.literal("diurnal"),
      periodRounds: z.number().positive().finite(),
      minOnline: probability,
      maxOnline: probability.default(1),
      phaseSpread: probability.default(1),
    })
    .strict(),
]);

const scheduleEntrySchema = z
  .object({
    /** Client indices, or a seeded draw of a fraction (rounded) or a count of all clients. */
    clients: z.union([
      z.array(nonnegativeInt).min(1),
      z.object({ fraction: probability }).strict(),
      z.object({ count: nonnegativeInt }).strict(),
    ]),
    /** Offline from round `from` through `to` (inclusive), back for to + 1; for good without `to`. */
    offline: z.object({ from: round, to: round.optional() }).strict(),
  })
  .strict();

export const availabilitySchema = z
  .object({
    pattern: patternSchema.default({ kind: "always" }),
    schedule: z.array(scheduleEntrySchema).optional(),
  })
  .strict();
export type Availability = z.infer<typeof availabilitySchema>;
export type AvailabilityPattern = Availability["pattern"];

/** Cross-field checks, one line per problem, naming the field path. */
export function availabilityProblems(a: Availability | undefined, clients: number, where: string): string[] {
  if (!a) return [];
  const problems: string[] = [];
  if (a.pattern.kind === "diurnal" && a.pattern.minOnline > a.pattern.maxOnline) {
    problems.push(
      `${where}.pattern.minOnline: ${a.pattern.minOnline} exceeds maxOnline (${a.pattern.maxOnline})`,
    );
  }
  (a.schedule ?? []).forEach((entry, i) => {
    const at = `${where}.schedule.${i}`;
    if (Array.isArray(entry.clients)) {
      for (const index of entry.clients.filter((c) => c >= clients)) {
        problems.push(`${at}.clients: index ${index} is outside [0, ${clients})`);
      }
    } else if ("count" in entry.clients && entry.clients.count > clients) {
      problems.push(`${at}.clients.count: ${entry.clients.count} exceeds clients (${clients})`);
    }
    const { from, to } = entry.offline;
    if (to !== undefined && to < from) problems.push(`${at}.offline.to: ${to} is before from (${from})`);
  });
  return problems;
}

/** The fields of a scenario that decide availability. */
export interface AvailabilityInput {
  seed: number;
  clients: number;
  availability?: Availability | undefined;
}

/**
 * A scenario's availability, with the schedule's client draws done once: ask it about any
 * client and round, as often as needed.
 */
export class AvailabilityModel {
  private readonly pattern: AvailabilityPattern;
  private readonly windows: { clients: Set<number>; from: number; to: number }[];

  constructor(private readonly scenario: AvailabilityInput) {
    const { clients, seed } = scenario;
    if (!Number.isInteger(clients) || clients < 1) {
      throw new FedsimError(ErrorCode.INVALID_CONFIG, `clients must be an integer ≥ 1, got ${clients}`);
    }
    const problems = availabilityProblems(scenario.availability, clients, "availability");
    if (problems.length > 0) {
      throw new FedsimError(ErrorCode.INVALID_CONFIG, "invalid availability", problems);
    }
    this.pattern = scenario.availability?.pattern ?? { kind: "always" };
    this.windows = (scenario.availability?.schedule ?? []).map((entry, i) => {
      const selection = entry.clients;
      let chosen: number[];
      if (Array.isArray(selection)) chosen = selection;
      else {
        const count = "count" in selection ? selection.count : Math.round(selection.fraction * clients);
        chosen = sampleWithoutReplacement(
          clients,
          count,
          createRng(deriveSeed(seed, "availability-schedule", i)),
        );
      }
      return {
        clients: new Set(chosen),
        from: entry.offline.from,
        to: entry.offline.to ?? Number.POSITIVE_INFINITY,
      };
    });
  }

  /** The pattern's probability that `clientIndex` is online in `round` (the schedule aside). */
  onlineProbability(clientIndex: number, round: number): number {
    this.check(clientIndex, round);
    const p = this.pattern;
    if (p.kind === "always") return 1;
    const phase =
      p.phaseSpread * createRng(deriveSeed(this.scenario.seed, "availability-phase", clientIndex)).next();
    const wave = (1 + Math.cos(2 * Math.PI * ((round - 1) / p.periodRounds + phase))) / 2;
    return p.minOnline + (p.maxOnline - p.minOnline) * wave;
  }

  /** Whether the scheduled windows take `clientIndex` offline in `round`. */
  scheduledOffline(clientIndex: number, round: number): boolean {
    this.check(clientIndex, round);
    return this.windows.some((w) => w.clients.has(clientIndex) && round >= w.from && round <= w.to);
  }

  isOnline(clientIndex: number, round: number): boolean {
    if (this.scheduledOffline(clientIndex, round)) return false;
    const p = this.onlineProbability(clientIndex, round);
    if (p >= 1) return true;
    return createRng(deriveSeed(this.scenario.seed, "availability", clientIndex, round)).next() < p;
  }

  /** The online clients among `indices` (default: all of the scenario's clients) in `round`. */
  onlineClients(round: number, indices?: Iterable<number>): Set<number> {
    const all = indices ?? Array.from({ length: this.scenario.clients }, (_, i) => i);
    const online = new Set<number>();
    for (const index of all) if (this.isOnline(index, round)) online.add(index);
    return online;
  }

  private check(clientIndex: number, round: number): void {
    if (!Number.isInteger(clientIndex) || clientIndex < 0 || clientIndex >= this.scenario.clients) {
      throw new FedsimError(
        ErrorCode.INVALID_CONFIG,
        `clientIndex ${clientIndex} is outside [0, ${this.scenario.clients})`,
      );
    }
    if (!Number.isInteger(round) || round < 1) {
      throw new FedsimError(ErrorCode.INVALID_CONFIG, `round must be an integer ≥ 1, got ${round}`);
    }
  }
}

/** The clients online in `round` (1-based); the same set for the same seed on every process. */
export function onlineClients(
  scenario: AvailabilityInput,
  round: number,
  indices?: Iterable<number>,
): Set<number> {
  return new AvailabilityModel(scenario).onlineClients(round, indices);
}
