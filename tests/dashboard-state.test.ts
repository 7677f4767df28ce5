import { describe, expect, it } from "vitest";
import { ErrorCode } from "../common/errors.js";
import type { FitOutcome } from "../server/client-proxy.js";
import { DashboardState, dashboardRound } from "../server/observe/dashboard-state.js";
import { resultHeader } from "../server/observe/upload-signal.js";
import type { RoundRecord } from "../server/round-record.js";

function record(round: number, extra: Partial<RoundRecord> = {}): RoundRecord {
  return {
    round,
    accuracy: 0.5 + round / 100,
    loss: 1 - round / 100,
    participants: 2,
    sampled: 3,
    failures: 1,
    failureDetails: [{ clientId: "c", reason: "rejected", code: ErrorCode.NON_FINITE }],
    failuresByKind: { rejected: 1 },
    dropouts: 0,
    cancelled: 0,
    bytesSent: 300,
    bytesReceived: 200,
    seconds: 1.5,
    startedAt: 0,
    clients: [{ clientId: "a", startSeconds: 0, seconds: 1, outcome: "ok" }],
    ...extra,
  };
}

const ok = (clientId: string): FitOutcome => ({ ok: true, clientId, delta: new Float32Array(4) });
const failed = (clientId: string, reason: "timeout" | "cancelled", code: string): FitOutcome => ({
  ok: false,
  clientId,
  reason,
  code,
  message: "m",
});

describe("the dashboard's view of a round", () => {
  it("walks each sampled client through sampled → training → uploading → done or failed with its code", () => {
    const state = new DashboardState({ model: "tiny-mlp" }, 5, 3);
    expect(state.sampled(1, ["a", "b", "c", "d"]).map((c) => c.state)).toEqual([
      "sampled",
      "sampled",
      "sampled",
      "sampled",
    ]);
    const collecting = state.phase(1, "COLLECTING", "4 clients");
    expect(collecting.phase).toEqual({ round: 1, phase: "COLLECTING", detail: "4 clients" });
    expect(collecting.clients.map((c) => c.state)).toEqual(["training", "training", "training", "training"]);
    expect(state.uploadStarted("a")).toEqual({ clientId: "a", state: "uploading" });
    // Only a training client starts uploading; an unknown id changes nothing.
    expect(state.uploadStarted("a")).toBeNull();
    expect(state.uploadStarted("zz")).toBeNull();
    expect(state.outcome(1, ok("a"))).toEqual({ clientId: "a", state: "done" });
    expect(state.outcome(1, failed("b", "timeout", ErrorCode.CLIENT_TIMEOUT))).toEqual({
      clientId: "b",
      state: "failed",
      reason: "timeout",
      code: ErrorCode.CLIENT_TIMEOUT,
    });
    expect(state.outcome(1, failed("d", "cancelled", ErrorCode.CANCELLED))?.state).toBe("cancelled");
    // A late outcome from another round does not touch this round's table.
    expect(state.outcome(0, ok("c"))).toBeNull();

    // "c" failed before any outcome (e.g. a SecAgg key stage): the record says so.
    const done = state.roundDone(record(1));
    expect(done.clients).toEqual([
      { clientId: "c", state: "failed", reason: "rejected", code: ErrorCode.NON_FINITE },
    ]);
    const snap = state.snapshot();
    expect(snap).toMatchObject({ config: { model: "tiny-mlp" }, totalRounds: 5, targetEpsilon: 3 });
    expect(snap.current).toMatchObject({ round: 1, phase: "COLLECTING", clientsRound: 1 });
    expect(Object.fromEntries(snap.current.clients.map((c) => [c.clientId, c.state]))).toEqual({
      a: "done",
      b: "failed",
      c: "failed",
      d: "cancelled",
    });
    expect(snap.rounds.map((r) => r.round)).toEqual([1]);

    // The table stays until the next round samples.
    state.phase(2, "WAITING_FOR_CLIENTS");
    expect(state.snapshot().current.clients).toHaveLength(4);
    state.sampled(2, ["e"]);
    expect(state.snapshot().current).toMatchObject({
      round: 2,
      clientsRound: 2,
      clients: [{ clientId: "e" }],
    });
  });

  it("sends a round's counts and scores, never its per-client timings or anything else", () => {
    const r = dashboardRound(
      record(3, {
        epsilon: 1.25,
        kept: "too few",
        trainLoss: 0.7,
        evaluated: false,
        strategy: { krumSelected: 1 },
        federated: { accuracy: 0.6, loss: 1, clients: 2, examples: 10, failed: 0 },
      }),
    );
    expect(r).toEqual({
      round: 3,
      accuracy: 0.53,
      loss: 0.97,
      evaluated: false,
      trainLoss: 0.7,
      federatedAccuracy: 0.6,
      participants: 2,
      sampled: 3,
      failures: 1,
      failuresByKind: { rejected: 1 },
      failuresByCode: { NON_FINITE: 1 },
      cancelled: 0,
      bytesSent: 300,
      bytesReceived: 200,
      seconds: 1.5,
      epsilon: 1.25,
      kept: "too few",
    });
  });

  it("without sampling (the asynchronous loop), a newer version's first outcome starts its table", () => {
    const state = new DashboardState({}, 3);
    expect(state.outcome(1, ok("a"))).toEqual({ clientId: "a", state: "done" });
    state.outcome(1, failed("b", "timeout", ErrorCode.CLIENT_TIMEOUT));
    state.outcome(2, ok("c"));
    expect(state.snapshot().current).toMatchObject({
      clientsRound: 2,
      clients: [{ clientId: "c", state: "done" }],
    });
    expect(state.outcome(1, ok("late"))).toBeNull();
  });

  it("draws a resumed run's earlier rounds as history", () => {
    const state = new DashboardState({}, 4);
    state.addHistory([record(1), record(2)]);
    const snap = state.snapshot();
    expect(snap.rounds.map((r) => r.round)).toEqual([1, 2]);
    expect(snap.current.round).toBe(2);
    expect(snap.targetEpsilon).toBeUndefined();
  });
});

describe("the 'uploading' signal", () => {
  it("is a fit result's binary header on the main namespace, with or without an ack id", () => {
    expect(resultHeader({ type: "message", data: '51-["fitResult",{"round":1}]' })).toEqual({
      event: "fitResult",
    });
    expect(resultHeader({ type: "message", data: '52-17["fitResult",{}]' })).toEqual({ event: "fitResult" });
    // A pool session's: the virtual client is named by its index, wherever the key sits.
    expect(
      resultHeader({ type: "message", data: '51-4["poolFitResult",{"round":2,"index":7,"nonce":"n"}]' }),
    ).toEqual({ event: "poolFitResult", index: 7 });
  });

  it("is not a text-only reply, another event, another namespace, a binary frame, or a bad index", () => {
    const not = [
      '2["fitResult",{}]',
      '21["fitResult",{}]',
      '51-["hello",{}]',
      '51-/dashboard,["fitResult",{}]',
      '51-["poolFitResult",{"index":-1}]',
      '51-["poolFitResult",{"index":"3"}]',
      '51-["poolFitResult",{"index":1',
      '51-["poolFitResult"]',
    ];
    for (const data of not) expect(resultHeader({ type: "message", data }), data).toBeNull();
    expect(resultHeader({ type: "message", data: Buffer.from('51-["fitResult"') })).toBeNull();
    expect(resultHeader({ type: "ping" })).toBeNull();
  });
});
