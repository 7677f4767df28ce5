import { describe, expect, it } from "vitest";
import { compactRecords } from "../server/checkpoint.js";
import type { RoundRecord } from "../server/round-record.js";

function record(round: number, timings: number): RoundRecord {
  return {
    round,
    accuracy: 0.5,
    loss: 1,
    participants: timings,
    sampled: timings,
    failures: 0,
    failureDetails: [],
    seconds: 1,
    startedAt: round * 1000,
    failuresByKind: {},
    dropouts: 0,
    cancelled: 0,
    bytesSent: 0,
    bytesReceived: 0,
    clients: Array.from({ length: timings }, (_, i) => ({
      clientId: `c${i}`,
      startSeconds: 0,
      seconds: 1,
      outcome: "ok" as const,
    })),
  };
}

describe("compactRecords", () => {
  it("keeps every record and the newest rounds' timings within the budget", () => {
    const records = Array.from({ length: 30 }, (_, i) => record(i + 1, 1000));
    const compact = compactRecords(records);
    expect(compact.map((r) => r.round)).toEqual(records.map((r) => r.round));
    expect(compact.filter((r) => r.clients.length > 0).map((r) => r.round)).toEqual(
      Array.from({ length: 20 }, (_, i) => i + 11),
    );
    expect(compact[0]).toMatchObject({ round: 1, participants: 1000, clients: [] });
    expect(records[0].clients).toHaveLength(1000);
  });

  it("leaves small runs untouched", () => {
    const records = Array.from({ length: 50 }, (_, i) => record(i + 1, 10));
    expect(compactRecords(records)).toEqual(records);
  });
});
