import { createHash } from "node:crypto";
import { type ClientBehaviour, ClientNode } from "../../client/node.js";
import { ModelWorkbench } from "../../client/workbench.js";
import { keyPairFromSeed } from "../../common/crypto/ed25519.js";
import type { Identity } from "../../common/crypto/identity.js";
import { type Dataset, holdOut } from "../../common/data/dataset.js";
import { ErrorCode, FedsimError } from "../../common/errors.js";
import { registeredClient } from "../../common/registry.js";
import { createRng, deriveSeed } from "../../common/rng.js";
import { clientData, loadScenarioData, partitionForClients } from "../data.js";
import type { Scenario } from "../schema.js";
import { attackerBehaviour, attackerIndices, labelFlippedCopy } from "./attacks.js";
import { clientProfile, heterogeneityBehaviour, NetworkConditions } from "./heterogeneity.js";
import { stragglerBehaviour } from "./stragglers.js";

export interface PoolOptions {
  url: string;
  scenario: Scenario;
  /** Which of the scenario's clients this pool hosts (indices into its partition). */
  clientIndices: number[];
  token?: string;
  ca?: string;
  log?: (line: string) => void;
  /** The pool's network delay multiplier (the PoolController changes it); default: a fresh one. */
  network?: NetworkConditions;
  /** How clients wait out scripted delays; tests inject a recorder. */
  sleep?: (ms: number) => Promise<void>;
}

/**
 * Hosts many virtual clients in one process: each is its own Socket.IO connection with its own
 * identity and partition, and all share one ModelWorkbench (one model per architecture).
 */
export async function startClientPool(options: PoolOptions): Promise<ClientNode[]> {
  const { scenario } = options;
  const { train } = await loadScenarioData(scenario);
  const table = partitionForClients(scenario, train);
  const workbench = scenarioWorkbench(scenario);
  const attackers = scenarioAttackers(scenario);
  const network = options.network ?? new NetworkConditions();
  // The pool knows the run's privacy settings (a lone node does not): it declares its clients'
  // sizes only when no update would hide them anyway.
  const privacy = scenario.privacy;
  const declareExamples = !privacy || (!privacy.envelope && !privacy.dp && !privacy.secagg);
  return options.clientIndices.map((index) => {
    const poisoned = attackers.has(index) && scenario.attackers?.attack === "labelFlip";
    const holdout = scenario.evaluation.federated?.holdout;
    const part = clientData(table, train, index);
    const split = holdout ? holdOut(part, holdout) : { train: part, heldOut: undefined };
    const data = poisoned ? labelFlippedCopy(split.train) : split.train;
    return new ClientNode({
      url: options.url,
      data,
      ...(split.heldOut ? { evalData: split.heldOut } : {}),
      workbench,
      identity: simulatedIdentity(scenario.seed, index),
      label: `client-${index}`,
      declareExamples,
      seed: deriveSeed(scenario.seed, "client", index),
      behaviour: scenarioBehaviour(scenario, index, attackers, network),
      ...(options.token ? { token: options.token } : {}),
      ...(options.sleep ? { sleep: options.sleep } : {}),
      ...(options.ca ? { ca: options.ca } : {}),
      ...(options.log ? { log: options.log } : {}),
    });
  });
}

/**
 * The model workbench a pool's clients share, running the scenario's custom client logic
 * (`client:`, registered with defineClient) when it names one.
 */
export function scenarioWorkbench(scenario: Scenario): ModelWorkbench {
  if (scenario.client === undefined) return new ModelWorkbench();
  const client = registeredClient(scenario.client);
  if (!client) {
    throw new FedsimError(
      ErrorCode.INVALID_SCENARIO,
      `client: "${scenario.client}" is not defined in this process; import the module that calls defineClient (RunOptions.modules)`,
    );
  }
  return new ModelWorkbench({ client });
}

/**
 * A virtual client's signing key, derived from the scenario's seed and the client's index. The
 * coordinator's ids come from public keys and it samples from the sorted ids, so random keys
 * would make a seeded scenario sample different partitions on every run, and the strategies of a
 * sweep would not see the same federation. These keys are public knowledge to anyone with the
 * scenario file: fine for a simulation on loopback, whose per-run token keeps others out, and
 * never used for real deployments (`fedsim client` loads or generates its own key).
 */
export function simulatedIdentity(seed: number, index: number): Identity {
  const keySeed = createHash("sha256").update(`fedsim simulated client ${seed} ${index}`).digest();
  return keyPairFromSeed(new Uint8Array(keySeed));
}

/**
 * The key of a run's pool sessions, derived from the scenario's seed like simulatedIdentity. Every
 * pool process of a run uses it, so a virtual client's id (derived from this key and its index)
 * does not depend on how many pools host the clients, and seeded sampling picks the same ones.
 */
export function simulatedPoolIdentity(seed: number): Identity {
  const keySeed = createHash("sha256").update(`fedsim simulated pool ${seed}`).digest();
  return keyPairFromSeed(new Uint8Array(keySeed));
}

/** The scenario's attacking client indices (empty without an attackers block). */
export function scenarioAttackers(scenario: Scenario): Set<number> {
  const attackers = scenario.attackers;
  if (!attackers) return new Set();
  return new Set(attackerIndices(attackers.clients, scenario.clients, scenario.seed));
}

/**
 * Everything the scenario scripts for one client: dropouts, an attack, straggling, a slow device
 * or link. Pass `attackers` when building many clients, so the attacker draw runs once, and the
 * pool's `network` so its scale applies to this client.
 */
export function scenarioBehaviour(
  scenario: Scenario,
  index: number,
  attackers: ReadonlySet<number> = scenarioAttackers(scenario),
  network: NetworkConditions = new NetworkConditions(),
): ClientBehaviour {
  const roles: ClientBehaviour[] = [dropoutBehaviour(scenario, index)];
  if (scenario.attackers && attackers.has(index)) {
    roles.push(attackerBehaviour(scenario.attackers, deriveSeed(scenario.seed, "attacker", index)));
  }
  if (scenario.stragglers) {
    const seed = scenario.stragglers.seed ?? scenario.seed;
    roles.push(stragglerBehaviour({ fraction: scenario.stragglers.fraction, seed }, index));
  }
  // On the virtual clock nobody sleeps: device speed and links are simulated by the coordinator.
  if (scenario.heterogeneity && scenario.clock !== "virtual") {
    roles.push(heterogeneityBehaviour(clientProfile(scenario.heterogeneity, scenario.seed, index), network));
  }
  return composeBehaviours(roles);
}

/**
 * One behaviour from several: a client drops if any role drops it, delays add up, and update
 * rewrites and epoch overrides apply in the order given.
 */
export function composeBehaviours(roles: readonly ClientBehaviour[]): ClientBehaviour {
  const pick = <K extends keyof ClientBehaviour>(key: K) =>
    roles.map((r) => r[key]).filter((f): f is NonNullable<ClientBehaviour[K]> => f !== undefined);
  const sum =
    (delays: ((round: number, amount: number) => number)[]) =>
    (round: number, amount: number): number =>
      delays.reduce((total, f) => total + f(round, amount), 0);
  const drops = pick("dropInRound");
  const downloads = pick("downloadDelayMs");
  const afterTrains = pick("afterTrainDelayMs");
  const delays = pick("delayMs");
  const transforms = pick("transformUpdate");
  const epochs = pick("epochsForRound");
  return {
    ...(drops.length > 0 ? { dropInRound: (round) => drops.some((f) => f(round)) } : {}),
    ...(downloads.length > 0 ? { downloadDelayMs: sum(downloads) } : {}),
    ...(afterTrains.length > 0 ? { afterTrainDelayMs: sum(afterTrains) } : {}),
    ...(delays.length > 0 ? { delayMs: sum(delays) } : {}),
    ...(transforms.length > 0
      ? { transformUpdate: (update, round) => transforms.reduce((u, f) => f(u, round), update) }
      : {}),
    ...(epochs.length > 0
      ? { epochsForRound: (round, requested) => epochs.reduce((e, f) => f(round, e), requested) }
      : {}),
  };
}

/** Scripted dropouts: a seeded per-client coin per round, plus an explicit schedule. */
function dropoutBehaviour(scenario: Scenario, index: number): ClientBehaviour {
  const dropouts = scenario.dropouts;
  if (!dropouts) return {};
  return {
    dropInRound(round) {
      if (dropouts.schedule?.[String(round)]?.includes(index)) return true;
      if (dropouts.probability <= 0) return false;
      return createRng(deriveSeed(scenario.seed, "dropout", index, round)).next() < dropouts.probability;
    },
  };
}

export function sliceIndices(count: number, parts: number): number[][] {
  const out: number[][] = Array.from({ length: parts }, () => []);
  for (let i = 0; i < count; i++) out[i % parts].push(i);
  return out.filter((p) => p.length > 0);
}

export type { Dataset };
