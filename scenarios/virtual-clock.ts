import { type Dataset, heldOutCount, subset } from "../common/data/dataset.js";
import type { PartitionTable } from "../common/data/partition-table.js";
import { loadModel } from "../common/models/io.js";
import { setTrainableLayers } from "../common/models/tf-weights.js";
import { buildNamedModel } from "../common/models/zoo.js";
import { trainLocal } from "../common/train/trainer.js";
import type { VirtualClock } from "../server/virtual-round.js";
import type { VirtualClockSummary } from "./report.js";
import type { Scenario } from "./schema.js";
import { AvailabilityClock } from "./sim/availability-clock.js";
import { defaultPhoneFleet, PHONE_SECONDS_PER_EXAMPLE } from "./sim/default-fleet.js";
import { measureSecondsPerExample } from "./sim/fit-duration.js";
import { Fleet } from "./sim/fleet.js";
import { loadDeviceProfiles } from "./sim/profile-file.js";
import { type SimClient, SimulatedTiming } from "./sim/virtual-timing.js";
import { type VirtualBlock, virtualBlockOf } from "./virtual-schema.js";

export interface RunVirtualClock {
  clock: VirtualClock;
  /** What summary.json says about it (simulatedSeconds filled in at the end of the run). */
  summary: Omit<VirtualClockSummary, "simulatedSeconds">;
}

/**
 * The run's virtual clock: the scenario's fleet, each virtual client's training examples (its
 * partition less any federated-evaluation holdout), seconds per example (pinned, or measured now
 * with the scenario's model), and the availability clock.
 */
export async function buildVirtualClock(
  scenario: Scenario,
  parts: PartitionTable,
  /** The id the coordinator knows client `index` by (pool session or own key, see runner.ts). */
  clientId: (index: number) => string,
  train: Dataset,
  log: (line: string) => void,
): Promise<RunVirtualClock> {
  const block = virtualBlockOf(scenario);
  const fleet = await fleetOf(block, scenario.seed);
  const holdout = scenario.evaluation.federated?.holdout;
  const clients = new Map<string, SimClient>();
  for (let index = 0; index < parts.numClients; index++) {
    const n = parts.sizeOf(index);
    const examples = holdout ? n - heldOutCount(n, holdout) : n;
    clients.set(clientId(index), { index, examples });
  }
  const { value: pinned, source } = secondsPerExampleOf(block);
  const measured = source === "measured";
  const secondsPerExample = pinned ?? (await measureModel(scenario, train));
  if (measured) {
    log(
      `virtual clock: ${secondsPerExample.toPrecision(3)} s per example measured on this machine; pin virtual.secondsPerExample to reproduce the run elsewhere`,
    );
  }
  const budgetSeconds = block.simulatedHours === undefined ? undefined : block.simulatedHours * 3600;
  const timing = new SimulatedTiming({
    fleet,
    clients,
    seed: scenario.seed,
    secondsPerExample,
    availability: new AvailabilityClock(
      { ...block.availability, startUtcHour: block.startHour },
      scenario.seed,
    ),
  });
  return {
    clock: {
      timing,
      deadlineSeconds: scenario.roundDeadlineSeconds,
      serverSeconds: block.serverSeconds,
      ...(budgetSeconds !== undefined ? { budgetSeconds } : {}),
    },
    summary: {
      fleet: fleetName(block),
      secondsPerExample,
      secondsPerExampleSource: source,
      startHour: block.startHour,
      deadlineSeconds: scenario.roundDeadlineSeconds,
      ...(budgetSeconds !== undefined ? { budgetSeconds } : {}),
    },
  };
}

/**
 * The run's seconds per example at speed 1 and where it comes from: pinned by the scenario, the
 * built-in phones' published cost when unset, else measured on this machine (value undefined).
 */
export function secondsPerExampleOf(block: VirtualBlock): {
  value: number | undefined;
  source: VirtualClockSummary["secondsPerExampleSource"];
} {
  const given = block.secondsPerExample;
  if (typeof given === "number") return { value: given, source: "scenario" };
  if (given === undefined && block.devices === "phones") {
    return { value: PHONE_SECONDS_PER_EXAMPLE, source: "fleet" };
  }
  return { value: undefined, source: "measured" };
}

async function fleetOf(block: VirtualBlock, seed: number): Promise<Fleet> {
  const devices = block.devices;
  if (devices === "phones") return defaultPhoneFleet(seed);
  if ("profiles" in devices) return new Fleet(devices.profiles, seed);
  return new Fleet(await loadDeviceProfiles(devices.file), seed);
}

function fleetName(block: VirtualBlock): string {
  const devices = block.devices;
  if (devices === "phones") return "phones (built-in)";
  if ("profiles" in devices) return `${devices.profiles.map((p) => p.name).join(", ")} (scenario)`;
  return devices.file;
}

/**
 * Seconds per example per epoch of the scenario's model on this machine, with the clients' batch
 * size and the same training path: a few short fits on the first examples of the training set.
 */
async function measureModel(scenario: Scenario, train: Dataset): Promise<number> {
  const model = scenario.initModel
    ? await loadModel(scenario.initModel)
    : buildNamedModel(scenario.model, {
        inputShape: train.exampleShape,
        numClasses: train.numClasses,
        seed: scenario.seed,
      });
  try {
    setTrainableLayers(model, scenario.trainableLayers ?? null);
    const examples = Math.min(train.n, Math.max(scenario.fit.batchSize, 256));
    const sample = subset(
      train,
      Array.from({ length: examples }, (_, i) => i),
    );
    return await measureSecondsPerExample(
      () =>
        trainLocal(model, sample, {
          epochs: 1,
          batchSize: scenario.fit.batchSize,
          learningRate: scenario.fit.learningRate,
          seed: scenario.seed,
        }),
      { examples },
    );
  } finally {
    model.dispose();
  }
}
