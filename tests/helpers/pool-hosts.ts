import { virtualClientId } from "../../common/pool-protocol.js";
import type { PoolHubEvent } from "../../scenarios/pool-hub.js";
import type { RunPoolEvent } from "../../scenarios/remote-pools.js";
import { simulatedPoolIdentity } from "../../scenarios/sim/pool.js";
import { type CliProcess, spawnCli } from "./cli-process.js";

/** What the remote-pool tests share: a `fedsim pool` process, and the shares the run assigned. */
export const POOL_TOKEN = "remote-pools-test-token";

/** A real `fedsim pool` process (its own process group, with its workers) joining `run`. */
export function startPool(
  url: string,
  cores: number,
  name: string,
  run = "test-run",
  extra: string[] = [],
): CliProcess {
  const args = ["pool", "--server", url, "--run", run, "--token", POOL_TOKEN, "--cores", String(cores)];
  return spawnCli([...args, "--name", name, ...extra], { group: true });
}

type Assigned = Extract<PoolHubEvent, { type: "assigned" }>;

/** The first assignment made for `round` (a version, for an asynchronous run). */
export function assignedAt(events: readonly RunPoolEvent[], round: number): Assigned | undefined {
  return events.find((e): e is Assigned => e.type === "assigned" && e.round === round);
}

/** Every assignment the run made, in order. */
export function assignments(events: readonly RunPoolEvent[]): Assigned[] {
  return events.filter((e): e is Assigned => e.type === "assigned");
}

/** Each pool's share by name in an assignment (the first made for `round`, or the one given). */
export function shares(events: readonly RunPoolEvent[] | Assigned, round = 0): Record<string, number> {
  const assigned = Array.isArray(events) ? assignedAt(events, round) : (events as Assigned);
  return Object.fromEntries((assigned?.pools ?? []).map((p) => [p.name, p.hosted.length]));
}

/** The client ids a pool hosted in an assignment. */
export function hostedBy(assigned: Assigned | undefined, name: string, seed: number): Set<string> {
  const pool = assigned?.pools.find((p) => p.name === name);
  const key = simulatedPoolIdentity(seed).publicKey;
  return new Set((pool?.hosted ?? []).map((i) => virtualClientId(key, i)));
}
