import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { ErrorCode } from "../common/errors.js";
import { getFlatWeights } from "../common/models/tf-weights.js";
import { FedAvg } from "../common/strategy/fedavg.js";
import type { FitOutcome } from "../server/client-proxy.js";
import type { CoordinatorHandle, CoordinatorOptions } from "../server/coordinator.js";
import { ensureBuilt } from "./helpers/built-cli.js";
import { type ClientProcess, spawnClientProcess } from "./helpers/client-process.js";
import { smallMnist, startTestCoordinator } from "./helpers/federation.js";

/**
 * kill -9 of real `fedsim client` processes while they train: the coordinator sees the TCP
 * connection die mid-fit and must finish the round with whoever is left.
 */

/**
 * Enough local work (500 examples × 2 epochs: ~0.3 s on an idle machine, seconds on a busy one)
 * that a kill shortly after the fit requests go out lands mid-training; the first test checks it.
 */
const SLOW_FIT = { epochs: 2, batchSize: 10, learningRate: 0.05 };
const KILL_AFTER_MS = 150;
const PARTITIONS = 16;

interface Federation {
  coordinator: CoordinatorHandle;
  clients: ClientProcess[];
  ids: string[];
  outcomes: FitOutcome[];
  /** Resolves when round 1's fit requests have gone out. */
  collecting: Promise<void>;
}

let running: Federation | undefined;

async function startFederation(clients: number, overrides: Partial<CoordinatorOptions>): Promise<Federation> {
  const { test } = await smallMnist(1, 1, 300);
  const outcomes: FitOutcome[] = [];
  let collectingStarted: () => void = () => {};
  const collecting = new Promise<void>((resolve) => {
    collectingStarted = resolve;
  });
  const coordinator = await startTestCoordinator(test, {
    rounds: 1,
    minAvailableClients: clients,
    deadlineMs: 60_000,
    onClientOutcome: (_round, outcome) => outcomes.push(outcome),
    onPhase: (_round, phase) => {
      if (phase === "COLLECTING") collectingStarted();
    },
    ...overrides,
  });
  const processes = Array.from({ length: clients }, (_, i) =>
    spawnClientProcess(coordinator.url, i, PARTITIONS),
  );
  running = { coordinator, clients: processes, ids: [], outcomes, collecting };
  running.ids = await Promise.all(processes.map((p) => p.clientId));
  return running;
}

/** Starts the run and kills `victims` with SIGKILL once the fit requests are out and training has begun. */
async function runAndKill(fed: Federation, victims: ClientProcess[]) {
  const run = fed.coordinator.run();
  await fed.collecting;
  await new Promise((resolve) => setTimeout(resolve, KILL_AFTER_MS));
  for (const victim of victims) victim.child.kill("SIGKILL");
  const result = await run;
  const ends = await Promise.all(victims.map((v) => v.exited));
  return { result, ends };
}

describe("kill -9 of client processes mid-fit", () => {
  // A build on a loaded 2-core machine can take minutes; it runs only when dist/ is stale.
  beforeAll(ensureBuilt, 600_000);
  afterEach(async () => {
    const fed = running;
    running = undefined;
    if (!fed) return;
    await fed.coordinator.close();
    for (const p of fed.clients)
      if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill("SIGKILL");
    await Promise.all(fed.clients.map((p) => p.exited));
  });

  it("the round completes with the survivors and records the killed client's disconnect", async () => {
    const fed = await startFederation(3, {
      strategy: new FedAvg({ fitConfig: SLOW_FIT, minFitClients: 2 }),
    });
    const before = getFlatWeights(fed.coordinator.model).values.slice();
    const victim = fed.clients[1];
    const { result, ends } = await runAndKill(fed, [victim]);

    expect(ends[0].signal).toBe("SIGKILL");
    const [record] = result.rounds;
    expect(record).toMatchObject({ sampled: 3, participants: 2, failures: 1 });
    expect(record.failureDetails).toEqual([
      { clientId: fed.ids[1], reason: "disconnect", code: ErrorCode.CLIENT_DISCONNECTED },
    ]);
    expect(record.kept).toBeUndefined();
    // The survivors trained for longer than the victim lived after its fit request: it died mid-training.
    const survivors = fed.outcomes.filter((o) => o.ok);
    expect(survivors.map((o) => o.clientId).sort()).toEqual([fed.ids[0], fed.ids[2]].sort());
    for (const s of survivors)
      if (s.ok) expect((s.metrics?.seconds ?? 0) * 1000).toBeGreaterThan(KILL_AFTER_MS);
    // The survivors' updates were applied.
    const after = fed.coordinator.loop.globalWeights.values;
    expect(after.every(Number.isFinite)).toBe(true);
    expect(Buffer.from(after.buffer, after.byteOffset, after.byteLength)).not.toEqual(
      Buffer.from(before.buffer),
    );
    // The survivors were told the run is over and left cleanly.
    await fed.coordinator.close();
    for (const i of [0, 2]) {
      const end = await fed.clients[i].exited;
      expect(end.code, fed.clients[i].output()).toBe(0);
      expect(fed.clients[i].output()).toMatch(/done after 1 round\(s\)/);
    }
  });

  it("kills that leave fewer than minFitClients keep the old model bit for bit, saying why", async () => {
    const fed = await startFederation(3, {
      strategy: new FedAvg({ fitConfig: SLOW_FIT, minFitClients: 2 }),
    });
    const before = getFlatWeights(fed.coordinator.model);
    const { result, ends } = await runAndKill(fed, [fed.clients[0], fed.clients[2]]);

    expect(ends.map((e) => e.signal)).toEqual(["SIGKILL", "SIGKILL"]);
    const [record] = result.rounds;
    expect(record).toMatchObject({ sampled: 3, participants: 1, failures: 2 });
    expect([...record.failureDetails].sort((a, b) => a.clientId.localeCompare(b.clientId))).toEqual(
      [fed.ids[0], fed.ids[2]]
        .sort()
        .map((clientId) => ({ clientId, reason: "disconnect", code: ErrorCode.CLIENT_DISCONNECTED })),
    );
    expect(record.kept).toMatch(/only 1 result\(s\), fewer than minFitClients=2 \(2 failure\(s\)\)/);
    // The survivor did send a real update; it must not have been applied.
    const survivor = fed.outcomes.find((o) => o.ok);
    expect(survivor?.ok && survivor.delta.some((v) => v !== 0)).toBe(true);
    const after = fed.coordinator.loop.globalWeights;
    expect(after.specs).toEqual(before.specs);
    expect(Buffer.from(after.values.buffer, after.values.byteOffset, after.values.byteLength)).toEqual(
      Buffer.from(before.values.buffer, before.values.byteOffset, before.values.byteLength),
    );
    expect(result.final).toEqual(result.initial);
  });
});
