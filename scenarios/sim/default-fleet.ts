import type { DeviceProfileInput } from "./device-profiles.js";
import { Fleet } from "./fleet.js";

/**
 * fedsim's default phone fleet, built from published measurements; docs/SCENARIOS.md ("Virtual
 * time and device profiles") gives every source and says which numbers are fedsim's choices.
 *
 * - Compute: three tiers, the terciles of the CPU float scores of the 254 phones with more than
 *   2 GB RAM in the AI Benchmark ranking (Ignatov et al.) as FLASH (Yang et al. 2021) ships it.
 *   Speeds are relative to the fastest tier's median phone, so the run's seconds per example is
 *   that phone's; within a tier, a log-normal with the tier's own spread, clamped to its range.
 * - Network: Ookla's Speedtest Global Index, September 2020, global mobile figures, as the
 *   medians of log-normals (the spread is fedsim's choice).
 * - Eligibility: every phone trains only while idle, charging and on an unmetered network
 *   (Bonawitz et al. 2019), modelled by the availability clock's charging windows.
 * - Dropouts: a hazard of 1 per hour, so that a five-minute fit drops with probability 8%,
 *   inside the 6–10% Bonawitz et al. report (the five minutes is fedsim's choice).
 */
const network = {
  downlinkMbps: { kind: "lognormal", median: 35.96, sigma: 0.8, min: 0.5, max: 1000 },
  uplinkMbps: { kind: "lognormal", median: 11.22, sigma: 0.8, min: 0.1, max: 500 },
  latencyMs: { kind: "lognormal", median: 40, sigma: 0.5, min: 5, max: 1000 },
  dropoutPerHour: 1,
  requiresCharging: true,
} as const satisfies Partial<DeviceProfileInput>;

export const DEFAULT_PHONE_FLEET: readonly DeviceProfileInput[] = [
  {
    name: "low-end phone",
    share: 1,
    speed: { kind: "lognormal", median: 0.38, sigma: 0.39, min: 0.097, max: 0.481 },
    ...network,
  },
  {
    name: "mid-range phone",
    share: 1,
    speed: { kind: "lognormal", median: 0.559, sigma: 0.11, min: 0.481, max: 0.683 },
    ...network,
  },
  {
    name: "high-end phone",
    share: 1,
    speed: { kind: "lognormal", median: 1, sigma: 0.2, min: 0.683, max: 1.368 },
    ...network,
  },
];

/**
 * The fleet's training cost per example and epoch at speed 1 (the high tier's median phone), in
 * seconds, when the scenario pins none. FedScale's log-normal device model
 * (`get_completion_time_lognormal` in fedscale/cloud/internal/client_metadata.py) costs a sample
 * 0.005 s × a log-normal(1, 0.6) factor, so its median device spends 0.005·e ≈ 0.0136 s per
 * sample. fedsim gives that cost to this fleet's median device, which is the mid tier's median
 * (speed 0.559): 0.0136 × 0.559 ≈ 0.0076 s at speed 1. Matching the medians is fedsim's choice;
 * FedScale's number does not depend on the model.
 */
export const PHONE_SECONDS_PER_EXAMPLE = 0.0076;

export function defaultPhoneFleet(seed: number): Fleet {
  return new Fleet(DEFAULT_PHONE_FLEET, seed);
}
