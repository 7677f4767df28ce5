import { ErrorCode, FedsimError } from "../../common/errors.js";
import type {
  ExchangeTimingInput,
  FitTimingInput,
  SimulatedFit,
  VirtualTiming,
} from "../../server/virtual-timing.js";
import {
  dropoutDelaySeconds,
  evaluationSeconds,
  type FitPhases,
  fitPhases,
  transferSeconds,
} from "./fit-duration.js";
import type { Device, Fleet } from "./fleet.js";
import { Purpose, unitHash } from "./seeded-hash.js";

/** What the simulation knows about a client id: its index in the fleet and its example count. */
export interface SimClient {
  index: number;
  examples: number;
}

/** Client ids to fleet indices and example counts: a function or a Map, whichever the caller has. */
export type ClientLookup = ((clientId: string) => SimClient | undefined) | ReadonlyMap<string, SimClient>;

/**
 * When devices may train, on the simulated clock (availability-clock.ts implements it). The
 * device is passed in so that its own requirements (charging, time zone) decide.
 */
export interface AvailabilitySource {
  isAvailable(index: number, at: number, device: Device): boolean;
  /**
   * The first moment in [from, to) at which a device that is training stops being eligible
   * (charging window over, outage), or undefined if it stays eligible throughout.
   */
  interruptedAt(index: number, from: number, to: number, device: Device): number | undefined;
}

export interface SimulatedTimingOptions {
  fleet: Fleet;
  clients: ClientLookup;
  /** Seeds the per-fit draws (dropouts); with the fleet's seed it fixes every answer. */
  seed: number;
  /**
   * Seconds per example per epoch at speed 1, for profiles that do not set their own: measured
   * on this machine for the model (measureSecondsPerExample), or pinned by the scenario.
   */
  secondsPerExample?: number;
  /** Absent: every device is always available. */
  availability?: AvailabilitySource;
}

/**
 * The virtual clock's answers for the coordinator's loops. Every answer is a pure function of
 * (seeds, client, its inputs): a fit's dropout draw is keyed by the client and the simulated time
 * it was sent, never by a counter of queries, so fits that finish training in any wall-clock order
 * give the same simulated run.
 */
export class SimulatedTiming implements VirtualTiming {
  private readonly lookup: (clientId: string) => SimClient | undefined;

  constructor(private readonly options: SimulatedTimingOptions) {
    const { clients, fleet, secondsPerExample } = options;
    this.lookup = typeof clients === "function" ? clients : (id) => clients.get(id);
    if (secondsPerExample !== undefined && !(secondsPerExample > 0 && Number.isFinite(secondsPerExample))) {
      throw new FedsimError(
        ErrorCode.INVALID_CONFIG,
        `secondsPerExample must be a finite number > 0, got ${secondsPerExample}`,
      );
    }
    if (secondsPerExample === undefined && fleet.needsSecondsPerExample) {
      const names = fleet.profiles.filter((p) => p.secondsPerExample === undefined).map((p) => p.name);
      throw new FedsimError(
        ErrorCode.INVALID_CONFIG,
        `secondsPerExample is required: profiles ${names.join(", ")} give a speed, not their own seconds per example`,
      );
    }
  }

  /** The client's device, with its distributions drawn. */
  device(clientId: string): Device {
    return this.options.fleet.device(this.client(clientId).index);
  }

  /** The simulated seconds of each phase of a fit (for timelines and reports). */
  phases(input: FitTimingInput): FitPhases {
    const client = this.client(input.clientId);
    const device = this.options.fleet.device(client.index);
    return this.phasesFor(device, client, input);
  }

  fit(input: FitTimingInput): SimulatedFit {
    checkSentAt(input.sentAt);
    const client = this.client(input.clientId);
    const device = this.options.fleet.device(client.index);
    const arrival = input.sentAt + this.phasesFor(device, client, input).total;
    const u = unitHash(this.options.seed, Purpose.DROPOUT, client.index, input.sentAt);
    return this.settle(client.index, device, input.sentAt, arrival, u);
  }

  /**
   * A federated evaluation or SecAgg stage: the request down, a forward pass over the evaluated
   * examples (EVALUATION_COST of a training epoch each), the reply up. The device may drop out or
   * stop being eligible from `engagedSince`; that draw has its own purpose, keyed by the device and
   * the moment its exposure began, so it is independent of the fit's and repeats for a seed.
   */
  exchange(input: ExchangeTimingInput): SimulatedFit {
    checkSentAt(input.sentAt);
    const since = input.engagedSince ?? input.sentAt;
    checkSentAt(since);
    const client = this.client(input.clientId);
    const device = this.options.fleet.device(client.index);
    const secondsPerExample = device.secondsPerExample ?? this.options.secondsPerExample!;
    const arrival =
      input.sentAt +
      transferSeconds(input.bytesDown, device.downlinkMbps, device.latencyMs) +
      evaluationSeconds(input.evaluatedExamples, secondsPerExample, device.speed) +
      transferSeconds(input.bytesUp, device.uplinkMbps, device.latencyMs);
    const u = unitHash(this.options.seed, Purpose.EXCHANGE_DROPOUT, client.index, since);
    return this.settle(client.index, device, Math.min(since, input.sentAt), arrival, u);
  }

  earliestArrival(input: Omit<FitTimingInput, "bytesUp">): number {
    checkSentAt(input.sentAt);
    const client = this.client(input.clientId);
    const device = this.options.fleet.device(client.index);
    const { download, compute } = this.phasesFor(device, client, { ...input, bytesUp: 0 });
    return input.sentAt + download + compute + device.latencyMs / 1000;
  }

  isAvailable(clientId: string, at: number): boolean {
    const availability = this.options.availability;
    if (!availability) return true;
    const client = this.client(clientId);
    return availability.isAvailable(client.index, at, this.options.fleet.device(client.index));
  }

  /**
   * Whether a device held from `from` until `arrival` gets there: an availability interruption or
   * a dropout (exponential from `from`, drawn from `u`) that comes first fails it at that moment.
   */
  private settle(index: number, device: Device, from: number, arrival: number, u: number): SimulatedFit {
    const droppedAt = from + dropoutDelaySeconds(device.dropoutPerHour, u);
    const interrupted = this.options.availability?.interruptedAt(index, from, arrival, device);
    if (interrupted !== undefined && interrupted < arrival && interrupted <= droppedAt) {
      return { arrived: false, at: interrupted, reason: "device became unavailable" };
    }
    if (droppedAt < arrival) return { arrived: false, at: droppedAt, reason: "device dropped out" };
    return { arrived: true, at: arrival };
  }

  private phasesFor(device: Device, client: SimClient, input: FitTimingInput): FitPhases {
    // The constructor made sure one of the two is there.
    const secondsPerExample = device.secondsPerExample ?? this.options.secondsPerExample!;
    return fitPhases(
      { ...device, secondsPerExample },
      { bytesDown: input.bytesDown, bytesUp: input.bytesUp, examples: client.examples, epochs: input.epochs },
    );
  }

  private client(clientId: string): SimClient {
    const client = this.lookup(clientId);
    if (!client)
      throw new FedsimError(ErrorCode.UNKNOWN_CLIENT, `no simulated device for client ${clientId}`);
    return client;
  }
}

function checkSentAt(sentAt: number): void {
  if (!(sentAt >= 0 && Number.isFinite(sentAt))) {
    throw new FedsimError(ErrorCode.INVALID_CONFIG, `sentAt must be a finite number ≥ 0, got ${sentAt}`);
  }
}
