import { EventEmitter } from "node:events";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { Server } from "socket.io";
import { io as connect, type Socket } from "socket.io-client";
import { afterEach, describe, expect, it } from "vitest";
import { bytesToVector, vectorToBytes } from "../common/crypto/secagg/messages.js";
import { EDGE_NAMESPACE, type EdgeFitPlan, type InterServerEvents } from "../common/edge-protocol.js";
import { ErrorCode, type FedsimError } from "../common/errors.js";
import type { ClientProxy, FitOutcome, FitRequest } from "../server/client-proxy.js";
import { EdgeDispatch } from "../server/edges/edge-dispatch.js";
import { EdgeLinks } from "../server/edges/edge-links.js";
import { EdgeRound } from "../server/edges/edge-round.js";
import { answerSecAgg } from "../server/edges/edge-secagg.js";

/** Both ends of secure aggregation over an edge's link, each against a stand-in for the other. */

const specs = [{ name: "w", shape: [3] }];
const secagg = { clipRange: 1, scale: 1000, weighted: false, maxWeight: 1 };
const withCode = (code: string) => expect.objectContaining({ code });

function plan(key = "key-00000001"): EdgeFitPlan {
  return {
    round: 2,
    key,
    deadlineMs: 5_000,
    config: { epochs: 1, batchSize: 8, learningRate: 0.1 },
    mode: "sum",
    weighting: "uniform",
    assignments: { "edge-0": ["c1", "c2"] },
    secagg,
  };
}

function request(): FitRequest {
  return {
    round: 2,
    config: plan().config,
    weights: { specs, values: new Float32Array(3) },
    frozen: null,
    secagg,
  };
}

/** A client whose fit succeeds with a masked vector (4 words: 3 values and the weight). */
function maskedClient(id: string, words: number[], stage?: ClientProxy["secagg"]): ClientProxy {
  return {
    id,
    fit: async (): Promise<FitOutcome> => ({
      ok: true,
      clientId: id,
      delta: new Float32Array(0),
      masked: { round: 2, clientId: id, masked: vectorToBytes(Uint32Array.from(words)) },
    }),
    ...(stage ? { secagg: stage } : {}),
  };
}

/** The edge's handlers on a stand-in link: `ask` emits an event as the coordinator would and returns the ack. */
function edgeSide(clients: ClientProxy[], round: () => EdgeRound | null) {
  const link = new EventEmitter();
  answerSecAgg(link as never, {
    client: (id) => clients.find((c) => c.id === id),
    round,
    log: () => {},
  });
  const ask = (event: string, payload: unknown) =>
    new Promise<Record<string, unknown>>((resolve) => link.emit(event, payload, resolve));
  return { ask };
}

async function startedRound(clients: ClientProxy[]): Promise<EdgeRound> {
  const outcomes: unknown[] = [];
  let allIn: () => void = () => {};
  const reported = new Promise<void>((resolve) => {
    allIn = resolve;
  });
  const round = new EdgeRound(plan(), request(), (o) => {
    outcomes.push(o);
    if (outcomes.length === clients.length) allIn();
  });
  round.start(clients);
  await reported;
  // Only the word "ok" travels with the outcome; the masked vector stays here.
  for (const o of outcomes) expect(o).not.toHaveProperty("delta");
  return round;
}

describe("an edge's part in secure aggregation", () => {
  it("passes a stage to its client and the reply back unchanged", async () => {
    const reply = { ok: true, message: { round: 2, clientId: "c1", cPublicKey: { $b64: "AA==" } } };
    const seen: unknown[] = [];
    const client = maskedClient("c1", [0, 0, 0, 0], async (stage, payload) => {
      seen.push([stage, payload]);
      return reply;
    });
    const { ask } = edgeSide([client], () => null);
    const answer = await ask("edgeSecAgg", {
      clientId: "c1",
      stage: "advertise",
      payload: { round: 2 },
      timeoutMs: 1000,
    });
    expect(answer).toEqual({ ok: true, reply });
    expect(seen).toEqual([["advertise", { round: 2 }]]);
  });

  it("refuses a malformed stage, a client it does not hold, and says when its client timed out", async () => {
    const slow = maskedClient("c1", [0, 0, 0, 0], () => Promise.reject(new Error("operation has timed out")));
    const { ask } = edgeSide([slow], () => null);
    const stage = { clientId: "c1", stage: "unmask", payload: {}, timeoutMs: 1000 };
    expect(await ask("edgeSecAgg", { ...stage, stage: "reveal-everything" })).toEqual(
      withCode(ErrorCode.BAD_PAYLOAD),
    );
    expect(await ask("edgeSecAgg", { ...stage, timeoutMs: -1 })).toEqual(withCode(ErrorCode.BAD_PAYLOAD));
    expect(await ask("edgeSecAgg", { ...stage, clientId: "c9" })).toEqual(
      withCode(ErrorCode.CLIENT_DISCONNECTED),
    );
    expect(await ask("edgeSecAgg", stage)).toEqual(withCode(ErrorCode.CLIENT_TIMEOUT));
  });

  it("sums exactly the masked inputs named, mod 2^32, for the current round only", async () => {
    const clients = [maskedClient("c1", [0xffff_ffff, 1, 2, 1]), maskedClient("c2", [2, 3, 4, 1])];
    const round = await startedRound(clients);
    const { ask } = edgeSide(clients, () => round);
    const answer = await ask("edgeMaskedSum", { round: 2, key: plan().key, clientIds: ["c1", "c2"] });
    expect(answer).toMatchObject({ ok: true, count: 2 });
    expect(Array.from(bytesToVector(answer.masked as Uint8Array))).toEqual([1, 4, 6, 2]);
    expect(await ask("edgeMaskedSum", { round: 2, key: "key-99999999", clientIds: ["c1"] })).toEqual(
      withCode(ErrorCode.STALE_ROUND),
    );
    expect(await ask("edgeMaskedSum", { round: 2, key: plan().key, clientIds: ["c1", "c3"] })).toEqual(
      withCode(ErrorCode.UNKNOWN_CLIENT),
    );
    expect(await ask("edgeMaskedSum", { round: 2, key: plan().key, clientIds: ["c1", "c1"] })).toEqual(
      withCode(ErrorCode.DUPLICATE),
    );
    expect(await ask("edgeMaskedSum", { key: plan().key })).toEqual(withCode(ErrorCode.BAD_PAYLOAD));
  });
});

describe("the coordinator's end of the link under secure aggregation", () => {
  let close: (() => Promise<void>) | null = null;
  afterEach(async () => {
    await close?.();
    close = null;
  });

  /** A real `/edge` namespace on port 0, and one edge that answers as `answers` says. */
  async function linked(answers: {
    edgeMaskedSum?: (request: { clientIds: string[] }) => unknown;
    edgeSecAgg?: (request: unknown) => unknown;
  }) {
    const httpServer = createServer();
    const io = new Server(httpServer);
    let onLinked: () => void = () => {};
    const ready = new Promise<void>((resolve) => {
      onLinked = resolve;
    });
    const links = new EdgeLinks(io, {
      welcome: { model: { topology: {}, specs } as never, maxPayloadBytes: 1 << 20 },
      weightsFor: () => null,
      onOutcome: () => {},
      onSealed: async () => {},
      onLinkClosed: () => {},
      onLinked: () => onLinked(),
      log: () => {},
    });
    await new Promise<void>((resolve) => httpServer.listen(0, "127.0.0.1", resolve));
    const { port } = httpServer.address() as AddressInfo;
    const edge: Socket = connect(`http://127.0.0.1:${port}${EDGE_NAMESPACE}`, { transports: ["websocket"] });
    for (const [event, answer] of Object.entries(answers)) {
      edge.on(event, (req: { clientIds: string[] }, ack: (reply: unknown) => void) => ack(answer(req)));
    }
    edge.on("connect", () => edge.emit("edgeHello", { edgeId: "edge-0" }, () => {}));
    await ready;
    close = async () => {
      edge.disconnect();
      links.close();
      await new Promise<void>((resolve) => io.close(() => resolve()));
    };
    return links;
  }

  /** A dispatch whose round 2 is under way, its plan taken by edge-0 through a stand-in adapter. */
  async function dispatching(links: EdgeLinks): Promise<EdgeDispatch> {
    let planSent: () => void = () => {};
    const sent = new Promise<void>((resolve) => {
      planSent = resolve;
    });
    const io = {
      serverSideEmit: (
        _event: string,
        _plan: unknown,
        ack: (err: Error | null, replies: unknown[]) => void,
      ) => {
        ack(null, [{ edgeId: "edge-0", started: ["c1", "c2"] }]);
        planSent();
      },
    } as unknown as Server<never, never, InterServerEvents, never>;
    const settings = { mode: "sum" as const, weighting: "uniform" as const, clipAtEdge: false, inbox: null };
    const dispatch = new EdgeDispatch(io, links, settings, () => {});
    void dispatch.fit("c1", "edge-0", request(), 60_000);
    void dispatch.fit("c2", "edge-0", request(), 60_000);
    await sent;
    return dispatch;
  }

  it("takes a masked sum of n+1 words over the clients it named, and refuses any other", async () => {
    let words = 4;
    let count = 2;
    const links = await linked({
      edgeMaskedSum: () => ({ ok: true, masked: vectorToBytes(new Uint32Array(words).fill(7)), count }),
    });
    const holder = (await dispatching(links)).maskedHolder("edge-0");
    expect(Array.from(await holder.maskedSum(2, ["c1", "c2"], 5_000))).toEqual([7, 7, 7, 7]);
    words = 3;
    await expect(holder.maskedSum(2, ["c1", "c2"], 5_000)).rejects.toEqual(withCode(ErrorCode.BAD_AGGREGATE));
    words = 4;
    count = 1;
    await expect(holder.maskedSum(2, ["c1", "c2"], 5_000)).rejects.toEqual(withCode(ErrorCode.BAD_AGGREGATE));
    await expect(holder.maskedSum(1, ["c1", "c2"], 5_000)).rejects.toEqual(withCode(ErrorCode.STALE_ROUND));
  });

  it("refuses a malformed masked sum, and keeps only a client's own codes from a stage refusal", async () => {
    let refusal: unknown = {
      ok: false,
      code: ErrorCode.CLIENT_TIMEOUT,
      message: "c1: operation has timed out",
    };
    const links = await linked({
      edgeMaskedSum: () => ({ ok: true, masked: "not bytes", count: 2 }),
      edgeSecAgg: () => refusal,
    });
    const holder = (await dispatching(links)).maskedHolder("edge-0");
    await expect(holder.maskedSum(2, ["c1", "c2"], 5_000)).rejects.toEqual(withCode(ErrorCode.BAD_PAYLOAD));
    const stage = { clientId: "c1", stage: "unmask" as const, payload: {}, timeoutMs: 1000 };
    const timedOut = await links.secaggStage("edge-0", stage).catch((err: FedsimError) => err);
    expect(timedOut).toEqual(withCode(ErrorCode.CLIENT_TIMEOUT));
    // The round's stage loop reads a timeout from the message: it must survive the link.
    expect((timedOut as FedsimError).message).toMatch(/timed out/);
    refusal = { ok: false, code: "UNAUTHORIZED", message: "an edge cannot speak for the coordinator" };
    await expect(links.secaggStage("edge-0", stage)).rejects.toEqual(withCode(ErrorCode.EDGE_LOST));
    await expect(links.secaggStage("edge-9", stage)).rejects.toEqual(withCode(ErrorCode.EDGE_LOST));
  });
});
