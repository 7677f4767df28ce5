import { z } from "zod";
import type { ClientBehaviour } from "../../client/node.js";
import { ErrorCode, FedsimError } from "../../common/errors.js";
import { createRng, deriveSeed, type Rng } from "../../common/rng.js";

/**
 * Device and network heterogeneity of virtual clients: every client draws, once and seeded by the
 * scenario's seed and its index, a compute speed, a latency and a bandwidth. A behaviour then
 * makes the client really take that long: it sleeps after training (slow device) and around the
 * transfers (slow link), so deadlines, stragglers and over-selection meet real time.
 */

/**
 * A per-client value: a bare number means every client gets it; otherwise one of the kinds below.
 * `value` bounds what the drawn numbers may be (e.g. positive for speeds).
 */
export function distributionSchema(value: z.ZodNumber) {
  const fraction = z.number().gt(0).max(1);
  const kinds = z.discriminatedUnion("kind", [
    z.object({ kind: z.literal("fixed"), value }).strict(),
    z.object({ kind: z.literal("uniform"), min: value, max: value }).strict(),
    /** median · e^(σ·N(0,1)): a long tail of slow clients, as measured on real fleets. */
    z.object({ kind: z.literal("lognormal"), median: value.gt(0), sigma: z.number().nonnegative() }).strict(),
    /** Device classes: each client falls in a tier with probability `fraction` (they sum to 1). */
    z
      .object({
        kind: z.literal("tiers"),
        tiers: z.array(z.object({ fraction, value }).strict()).min(1),
      })
      .strict(),
  ]);
  // A bare number is the fixed distribution; rewriting it first keeps zod's errors on the field path.
  return z.preprocess((v) => (typeof v === "number" ? { kind: "fixed", value: v } : v), kinds);
}

const positiveDistribution = distributionSchema(z.number().positive().finite());
export type Distribution = z.infer<typeof positiveDistribution>;

export const heterogeneitySchema = z
  .object({
    /** Compute speed factor: 1 = this machine, 0.25 = four times slower. Above 1 acts as 1. */
    speed: positiveDistribution.optional(),
    /** One-way latency of each transfer, in milliseconds. */
    latencyMs: distributionSchema(z.number().nonnegative().finite()).optional(),
    /** Bandwidth in both directions (megabits per second); uploadMbps/downloadMbps override it. */
    bandwidthMbps: positiveDistribution.optional(),
    uploadMbps: positiveDistribution.optional(),
    downloadMbps: positiveDistribution.optional(),
    /** Network delays × scale from a round on, e.g. [{ fromRound: 8, scale: 2 }]; rounds are 1-based. */
    networkScale: z
      .array(
        z.object({ fromRound: z.number().int().positive(), scale: z.number().positive().finite() }).strict(),
      )
      .optional(),
  })
  .strict();
export type Heterogeneity = z.infer<typeof heterogeneitySchema>;

/** Cross-field checks zod cannot express, one line per problem, naming the field path. */
export function heterogeneityProblems(h: Heterogeneity | undefined, where: string): string[] {
  if (!h) return [];
  const problems: string[] = [];
  const fields = ["speed", "latencyMs", "bandwidthMbps", "uploadMbps", "downloadMbps"] as const;
  for (const field of fields) {
    const d = h[field];
    if (d?.kind === "uniform" && d.min > d.max) {
      problems.push(`${where}.${field}: min ${d.min} exceeds max ${d.max}`);
    }
    if (d?.kind === "tiers") {
      const sum = d.tiers.reduce((s, t) => s + t.fraction, 0);
      if (Math.abs(sum - 1) > 1e-6) {
        problems.push(`${where}.${field}.tiers: fractions sum to ${Number(sum.toFixed(6))}, not 1`);
      }
    }
  }
  const rounds = (h.networkScale ?? []).map((e) => e.fromRound);
  const repeated = rounds.filter((r, i) => rounds.indexOf(r) !== i);
  if (repeated.length > 0) {
    problems.push(`${where}.networkScale: fromRound ${[...new Set(repeated)].join(", ")} listed twice`);
  }
  return problems;
}

/** One draw from a distribution. */
export function drawValue(distribution: Distribution, rng: Rng): number {
  switch (distribution.kind) {
    case "fixed":
      return distribution.value;
    case "uniform":
      return distribution.min + (distribution.max - distribution.min) * rng.next();
    case "lognormal":
      return distribution.median * Math.exp(distribution.sigma * rng.normal());
    case "tiers": {
      const u = rng.next();
      let cumulative = 0;
      for (const tier of distribution.tiers) {
        cumulative += tier.fraction;
        if (u < cumulative) return tier.value;
      }
      // Fractions that sum to 1 within rounding: the last tier takes the remainder.
      return distribution.tiers[distribution.tiers.length - 1].value;
    }
  }
}

/** Client `clientIndex`'s draw for `purpose`: the same for a seed, independent across purposes. */
export function clientDraw(distribution: Distribution, seed: number, purpose: string, clientIndex: number) {
  return drawValue(distribution, createRng(deriveSeed(seed, purpose, clientIndex)));
}

/** What one client is like. Unlimited bandwidth is Infinity (the transfer itself takes no time). */
export interface ClientProfile {
  speed: number;
  latencyMs: number;
  uploadMbps: number;
  downloadMbps: number;
}

export function clientProfile(
  h: Heterogeneity | undefined,
  seed: number,
  clientIndex: number,
): ClientProfile {
  const draw = (d: Distribution | undefined, purpose: string, absent: number) =>
    d ? clientDraw(d, seed, purpose, clientIndex) : absent;
  const both = draw(h?.bandwidthMbps, "bandwidth", Number.POSITIVE_INFINITY);
  return {
    speed: draw(h?.speed, "speed", 1),
    latencyMs: draw(h?.latencyMs, "latency", 0),
    uploadMbps: h?.uploadMbps ? draw(h.uploadMbps, "upload-bandwidth", 0) : both,
    downloadMbps: h?.downloadMbps ? draw(h.downloadMbps, "download-bandwidth", 0) : both,
  };
}

/**
 * Extra wait after training that took `trainSeconds` on this machine, so that a client of speed s
 * takes trainSeconds / s in all. A speed above 1 adds nothing: a simulation cannot run faster
 * than the machine it runs on.
 */
export function computeDelayMs(speed: number, trainSeconds: number): number {
  if (!(speed > 0)) throw new FedsimError(ErrorCode.INVALID_CONFIG, `speed must be > 0, got ${speed}`);
  if (!(trainSeconds >= 0)) {
    throw new FedsimError(ErrorCode.INVALID_CONFIG, `trainSeconds must be ≥ 0, got ${trainSeconds}`);
  }
  return Math.max(0, trainSeconds * (1 / speed - 1)) * 1000;
}

/** One transfer: latency plus the bytes at the bandwidth (megabits per second). */
export function transferDelayMs(latencyMs: number, mbps: number, bytes: number): number {
  if (!(latencyMs >= 0))
    throw new FedsimError(ErrorCode.INVALID_CONFIG, `latencyMs must be ≥ 0, got ${latencyMs}`);
  if (!(mbps > 0)) throw new FedsimError(ErrorCode.INVALID_CONFIG, `mbps must be > 0, got ${mbps}`);
  if (!(bytes >= 0)) throw new FedsimError(ErrorCode.INVALID_CONFIG, `bytes must be ≥ 0, got ${bytes}`);
  // bits / (Mbit/s · 1e6) seconds = bits / (mbps · 1000) milliseconds.
  return latencyMs + (bytes * 8) / (mbps * 1000);
}

/**
 * A multiplier on every network delay of the clients that share it (one per pool process), which
 * the pool controller changes while the run goes on: 2 doubles latencies and transfer times.
 */
export class NetworkConditions {
  private current = 1;

  get scale(): number {
    return this.current;
  }

  setScale(scale: number): void {
    if (!(scale > 0 && Number.isFinite(scale))) {
      throw new FedsimError(
        ErrorCode.INVALID_CONFIG,
        `networkScale must be a finite number > 0, got ${scale}`,
      );
    }
    this.current = scale;
  }
}

/** The scheduled network scale in `round`: the last `networkScale` entry starting at or before it. */
export function scheduledNetworkScale(h: Heterogeneity | undefined, round: number): number {
  let scale = 1;
  let from = 0;
  for (const entry of h?.networkScale ?? []) {
    if (entry.fromRound <= round && entry.fromRound >= from) {
      scale = entry.scale;
      from = entry.fromRound;
    }
  }
  return scale;
}

/** The hooks that make a client as slow as its profile; none for a client like this machine. */
export function heterogeneityBehaviour(profile: ClientProfile, network: NetworkConditions): ClientBehaviour {
  const hasNetwork =
    profile.latencyMs > 0 || Number.isFinite(profile.uploadMbps) || Number.isFinite(profile.downloadMbps);
  return {
    ...(profile.speed < 1
      ? { afterTrainDelayMs: (_round: number, seconds: number) => computeDelayMs(profile.speed, seconds) }
      : {}),
    ...(hasNetwork
      ? {
          downloadDelayMs: (_round: number, bytes: number) =>
            network.scale * transferDelayMs(profile.latencyMs, profile.downloadMbps, bytes),
          delayMs: (_round: number, bytes: number) =>
            network.scale * transferDelayMs(profile.latencyMs, profile.uploadMbps, bytes),
        }
      : {}),
  };
}
