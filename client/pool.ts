import { generateIdentity } from "../common/crypto/identity.js";
import type { Dataset } from "../common/data/dataset.js";
import { createRng, deriveSeed } from "../common/rng.js";
import { loadScenarioData, partitionForClients } from "../scenarios/data.js";
import type { Scenario } from "../scenarios/schema.js";
import { type ClientBehaviour, ClientNode } from "./node.js";
import { ModelWorkbench } from "./workbench.js";

export interface PoolOptions {
  url: string;
  scenario: Scenario;
  /** Which of the scenario's clients this pool hosts (indices into its partition). */
  clientIndices: number[];
  token?: string;
  ca?: string;
  log?: (line: string) => void;
}

/**
 * Hosts many virtual clients in one process: each is its own Socket.IO connection with its own
 * identity and partition, and all share one ModelWorkbench (one model per architecture).
 */
export async function startClientPool(options: PoolOptions): Promise<ClientNode[]> {
  const { scenario } = options;
  const { train } = await loadScenarioData(scenario);
  const parts = partitionForClients(scenario, train);
  const workbench = new ModelWorkbench();
  return options.clientIndices.map((index) => {
    const data = parts[index];
    return new ClientNode({
      url: options.url,
      data,
      workbench,
      identity: generateIdentity(),
      label: `client-${index}`,
      seed: deriveSeed(scenario.seed, "client", index),
      behaviour: scenarioBehaviour(scenario, index),
      ...(options.token ? { token: options.token } : {}),
      ...(options.ca ? { ca: options.ca } : {}),
      ...(options.log ? { log: options.log } : {}),
    });
  });
}

/** Scripted dropouts: a seeded per-client coin per round, plus an explicit schedule. */
export function scenarioBehaviour(scenario: Scenario, index: number): ClientBehaviour {
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
