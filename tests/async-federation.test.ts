import { mkdtemp, readFile, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import type { ClientNode } from "../client/node.js";
import { generateIdentity } from "../common/crypto/identity.js";
import { ErrorCode } from "../common/errors.js";
import { FedAsync } from "../common/strategy/fedasync.js";
import { FedBuff } from "../common/strategy/fedbuff.js";
import { totalSize } from "../common/weights.js";
import { readRunSummary } from "../scenarios/report/summary-schema.js";
import { runScenario } from "../scenarios/runner.js";
import { parseScenario } from "../scenarios/schema.js";
import type { CoordinatorHandle } from "../server/coordinator.js";
import type { RoundRecord } from "../server/round-record.js";
import { eventually } from "./helpers/eventually.js";
import { smallMnist, startClients, startTestCoordinator } from "./helpers/federation.js";
import { craftResult, type RogueFederation, startRogueFederation } from "./helpers/rogue.js";
import { recordIncoming } from "./helpers/security.js";

const fitConfig = { epochs: 1, batchSize: 16, learningRate: 0.1 };

describe("an asynchronous federation over real Socket.IO", () => {
  let coordinator: CoordinatorHandle | undefined;
  let clients: ClientNode[] = [];
  let fed: RogueFederation | undefined;
  let outDir: string | undefined;
  afterEach(async () => {
    for (const c of clients) c.close();
    await coordinator?.close();
    await fed?.close();
    if (outDir) await rm(outDir, { recursive: true, force: true });
    clients = [];
    coordinator = undefined;
    fed = undefined;
    outDir = undefined;
  });

  it("real client nodes train FedAsync versions; stale updates are accepted and recorded", async () => {
    const { parts, test } = await smallMnist(3, 200);
    outDir = await mkdtemp(path.join(os.tmpdir(), "fedsim-async-"));
    coordinator = await startTestCoordinator(test, {
      rounds: 6,
      strategy: new FedAsync({ concurrency: 3, mixing: 0.6, fitConfig }),
      outDir,
    });
    clients = startClients(coordinator.url, parts);
    await Promise.all(clients.map((c) => c.ready));
    const result = await coordinator.run();
    expect(result.rounds.map((r) => r.round)).toEqual([1, 2, 3, 4, 5, 6]);
    const updates = result.rounds.flatMap((r) => r.updates ?? []);
    expect(updates).toHaveLength(6);
    // All three start on version 0; whoever arrives second meets version 1 or later.
    expect(updates[0]).toMatchObject({ trainedOn: 0, staleness: 0 });
    expect(Math.max(...updates.map((u) => u.staleness))).toBeGreaterThanOrEqual(1);
    for (const [i, u] of updates.entries()) expect(u.trainedOn + u.staleness).toBe(i);
    expect(result.final.accuracy).toBeGreaterThan(result.initial.accuracy + 0.1);
    // metrics.jsonl carries every version's updates and staleness.
    const lines = (await readFile(path.join(outDir, "metrics.jsonl"), "utf8")).trim().split("\n");
    const written = lines.map((l) => JSON.parse(l) as RoundRecord);
    expect(written.map((r) => r.updates?.map((u) => u.staleness))).toEqual(
      result.rounds.map((r) => r.updates?.map((u) => u.staleness)),
    );
    expect(written.every((r) => r.staleness !== undefined)).toBe(true);
    // The clients acknowledged at least the six aggregated updates between them.
    await eventually(() =>
      expect(clients.reduce((n, c) => n + c.roundsTrained, 0)).toBeGreaterThanOrEqual(6),
    );
  });

  it("FedBuff with K = M = 2 flushes two updates per version over real clients", async () => {
    const { parts, test } = await smallMnist(2, 200);
    coordinator = await startTestCoordinator(test, {
      rounds: 3,
      minAvailableClients: 2,
      strategy: new FedBuff({ concurrency: 2, bufferSize: 2, fitConfig }),
    });
    clients = startClients(coordinator.url, parts);
    await Promise.all(clients.map((c) => c.ready));
    const result = await coordinator.run();
    expect(result.rounds.map((r) => r.participants)).toEqual([2, 2, 2]);
    expect(result.rounds.every((r) => r.staleness !== undefined)).toBe(true);
    expect(result.final.accuracy).toBeGreaterThan(result.initial.accuracy + 0.1);
  });

  it("a client sent two fits on the same version trains each with its own seed, so they differ", async () => {
    const { parts, test } = await smallMnist(1, 200);
    const deltas: Float32Array[] = [];
    class Capturing extends FedBuff {
      override onUpdate(current: Float32Array, update: Parameters<FedBuff["onUpdate"]>[1]) {
        deltas.push(update.delta.slice());
        return super.onUpdate(current, update);
      }
    }
    // One client, one slot and a buffer of two: its second fit starts from the same version 0.
    coordinator = await startTestCoordinator(test, {
      rounds: 1,
      minAvailableClients: 1,
      strategy: new Capturing({ concurrency: 1, bufferSize: 2, fitConfig }),
    });
    clients = startClients(coordinator.url, parts);
    await Promise.all(clients.map((c) => c.ready));
    const result = await coordinator.run();
    expect(result.rounds[0].updates?.map((u) => u.trainedOn)).toEqual([0, 0]);
    expect(deltas).toHaveLength(2);
    expect(Array.from(deltas[1])).not.toEqual(Array.from(deltas[0]));
  });

  it("FedBuff with sealed envelopes over real sockets: every update arrives sealed and versions complete", async () => {
    const { parts, test } = await smallMnist(3, 150);
    coordinator = await startTestCoordinator(test, {
      rounds: 3,
      strategy: new FedBuff({ concurrency: 3, bufferSize: 2, fitConfig }),
      asyncControl: { envelope: true },
    });
    const received = recordIncoming(coordinator.sockets, "fitResult");
    clients = startClients(coordinator.url, parts, () => ({ identity: generateIdentity() }));
    await Promise.all(clients.map((c) => c.ready));
    const result = await coordinator.run();
    expect(result.rounds.map((r) => r.participants)).toEqual([2, 2, 2]);
    expect(result.final.accuracy).toBeGreaterThan(result.initial.accuracy + 0.1);
    expect(received.length).toBeGreaterThanOrEqual(6);
    for (const { payload } of received) {
      expect(payload.update).toBeUndefined();
      expect(payload.envelope).toMatchObject({
        version: 2,
        chunks: expect.arrayContaining([expect.any(Uint8Array)]),
      });
    }
  });

  it("accepts a reply that arrives after newer versions, and still refuses its replay and unknown nonces", async () => {
    let published: () => void = () => {};
    const firstVersion = new Promise<void>((resolve) => {
      published = resolve;
    });
    let rogueId = "";
    fed = await startRogueFederation({
      coordinator: {
        rounds: 200,
        strategy: new FedAsync({ concurrency: 3, mixing: 0.5, fitConfig }),
        onRound: (record) => {
          published();
          if (record.updates?.some((u) => u.clientId === rogueId)) fed?.coordinator.loop.stop("rogue seen");
        },
      },
    });
    const rogue = await fed.admitRogue();
    rogueId = rogue.clientId;
    const run = fed.coordinator.run();
    const ins = await rogue.nextFit();
    expect(ins.round).toBe(0);
    await firstVersion;
    const message = craftResult(ins, new Float32Array(totalSize(ins.weights.specs)), 50);
    expect(await rogue.sendResult(message)).toEqual({ ok: true });
    expect(await rogue.sendResult(message)).toMatchObject({ ok: false, code: ErrorCode.REPLAY });
    const unknown = { ...message, nonce: "00112233445566778899aabb" };
    expect(await rogue.sendResult(unknown)).toMatchObject({ ok: false, code: ErrorCode.NOT_SAMPLED });
    const result = await run;
    expect(result.stopReason).toBe("rogue seen");
    const mine = result.rounds.flatMap((r) => r.updates ?? []).filter((u) => u.clientId === rogue.clientId);
    expect(mine).toHaveLength(1);
    expect(mine[0].trainedOn).toBe(0);
    expect(mine[0].staleness).toBeGreaterThanOrEqual(1);
  });

  it("refuses resume and round plugins with an asynchronous strategy before listening", async () => {
    const { test } = await smallMnist(1, 10);
    await expect(
      startTestCoordinator(test, {
        strategy: new FedBuff(),
        plugin: () => ({}),
      }),
    ).rejects.toMatchObject({ code: ErrorCode.INCOMPATIBLE_OPTIONS });
    await expect(
      startTestCoordinator(test, {
        strategy: new FedAsync(),
        roundControl: { overSelection: 0.5 },
      }),
    ).rejects.toMatchObject({
      code: ErrorCode.INCOMPATIBLE_OPTIONS,
      message: expect.stringContaining("fedasync"),
    });
  });

  it("the scenario runner runs fedbuff and writes staleness and every update to summary.json", async () => {
    outDir = await mkdtemp(path.join(os.tmpdir(), "fedsim-async-run-"));
    const scenario = parseScenario({
      name: "async-run",
      seed: 4,
      backend: "cpu",
      dataset: { name: "mnist", limitTrain: 600, limitTest: 200 },
      model: "tiny-mlp",
      clients: 6,
      clientsPerRound: 3,
      rounds: 4,
      processes: 0,
      roundDeadlineSeconds: 30,
      fit: { epochs: 1, batchSize: 20, learningRate: 0.1 },
      strategy: { name: "fedbuff", bufferSize: 2, staleness: { kind: "hinge", a: 1, b: 0 } },
      privacy: { envelope: false },
    });
    const summary = await runScenario(scenario, { outDir });
    expect(summary.strategy).toBe("fedbuff");
    expect(summary.clients.sampledPerRound).toBe(3);
    expect(summary.rounds.map((r) => r.participants)).toEqual([2, 2, 2, 2]);
    expect(summary.updates).toHaveLength(8);
    for (const u of summary.updates ?? []) {
      expect(u.label).toMatch(/^client-\d$/);
      // Hinge with a = 1, b = 0: s(τ) = 1/(τ + 1).
      expect(u.weight).toBeCloseTo(1 / (u.staleness + 1), 12);
    }
    // With three training and two per flush, someone always meets a newer version.
    expect(summary.rounds.some((r) => (r.staleness?.max ?? 0) > 0)).toBe(true);
    // The report's own reader accepts it and keeps the staleness.
    const read = await readRunSummary(outDir);
    expect(read.rounds.map((r) => r.staleness)).toEqual(summary.rounds.map((r) => r.staleness));
    expect(read.updates).toHaveLength(8);
  });
});
