import { EventEmitter } from "node:events";
import { describe, expect, it } from "vitest";
import type { EdgeAsyncFit, EdgeCancel, EdgeOutcome, EdgeSealed } from "../common/edge-protocol.js";
import { ErrorCode, FedsimError } from "../common/errors.js";
import { float32BytesView } from "../common/weights.js";
import { resolveClientLimits } from "../server/client-limits.js";
import type { ClientProxy, FitOutcome, FitRequest } from "../server/client-proxy.js";
import { AsyncEdgeDispatch } from "../server/edges/edge-async-dispatch.js";
import { EdgeAsyncFits } from "../server/edges/edge-async-fits.js";
import type { EdgeLinks } from "../server/edges/edge-links.js";
import type { VersionWeights } from "../server/edges/edge-uplink.js";

const config = { epochs: 1, batchSize: 8, learningRate: 0.1 };
const specs = [{ name: "w", shape: [3] }];

function request(version: number): FitRequest {
  return { round: version, config, weights: { specs, values: new Float32Array([1, 2, 3]) }, frozen: null };
}

/** The coordinator's links, in memory: what was asked of them, and how each edge answers a fit. */
function fakeLinks(answer: (edgeId: string, fit: EdgeAsyncFit) => Promise<boolean> = async () => true) {
  const started: { edgeId: string; fit: EdgeAsyncFit }[] = [];
  const cancels: { edgeId: string; cancel: EdgeCancel }[] = [];
  const links = {
    startFit: (edgeId: string, fit: EdgeAsyncFit) => {
      started.push({ edgeId, fit });
      return answer(edgeId, fit);
    },
    cancel: (edgeId: string, cancel: EdgeCancel) => void cancels.push({ edgeId, cancel }),
  } as unknown as EdgeLinks;
  return { links, started, cancels };
}

function okOutcome(fit: EdgeAsyncFit, values: number[], round = fit.version): EdgeOutcome {
  return {
    ok: true,
    round,
    key: fit.key,
    clientId: fit.clientId,
    numExamples: 10,
    delta: float32BytesView(new Float32Array(values)),
    bytes: { sent: 12, received: 12 },
  };
}

describe("the coordinator's asynchronous fits over edge links", () => {
  it("takes an update only from the edge it asked, for that fit and version, and of the model's size", async () => {
    const { links, started } = fakeLinks();
    const dispatch = new AsyncEdgeDispatch(links, resolveClientLimits());
    const pending = dispatch.fit("c1", "edge-0", request(4), 5_000);
    const [{ fit }] = started;
    expect(fit).toMatchObject({ version: 4, clientId: "c1", deadlineMs: 5_000, config });
    // The weights go to an edge that names this fit and its version, and to nobody else.
    expect(dispatch.weightsFor(4, fit.key)?.weights.specs).toEqual(specs);
    expect(dispatch.weightsFor(3, fit.key)).toBeNull();
    expect(dispatch.weightsFor(4, "someone-elses-key")).toBeNull();
    dispatch.onOutcome("edge-1", okOutcome(fit, [1, 1, 1]));
    dispatch.onOutcome("edge-0", okOutcome(fit, [1, 1, 1], 3));
    dispatch.onOutcome("edge-0", { ...okOutcome(fit, [1, 1, 1]), clientId: "c2" });
    dispatch.onOutcome("edge-0", okOutcome(fit, [1, 1]));
    const outcome = await pending;
    expect(outcome).toMatchObject({
      ok: false,
      clientId: "c1",
      reason: "rejected",
      code: ErrorCode.BAD_SHAPE,
    });
    expect(dispatch.weightsFor(4, fit.key)).toBeNull();
  });

  it("hands on a forwarded update with its example count", async () => {
    const { links, started } = fakeLinks();
    const dispatch = new AsyncEdgeDispatch(links, resolveClientLimits());
    const pending = dispatch.fit("c1", "edge-0", request(0), 5_000);
    dispatch.onOutcome("edge-0", okOutcome(started[0].fit, [0.5, -1, 2]));
    const outcome = (await pending) as Extract<FitOutcome, { ok: true }>;
    expect(outcome.ok).toBe(true);
    expect(Array.from(outcome.delta)).toEqual([0.5, -1, 2]);
    expect(outcome.numExamples).toBe(10);
  });

  it("under envelopes: sends the fit's own key, and takes no update it did not open itself", async () => {
    const { links, started } = fakeLinks();
    const dispatch = new AsyncEdgeDispatch(links, resolveClientLimits());
    const publicKey = new Uint8Array(32).fill(7);
    const open = async (): Promise<Uint8Array> => {
      throw new FedsimError(ErrorCode.DECRYPT_FAILED, "not this fit's key");
    };
    const pending = dispatch.fit("c1", "edge-0", { ...request(2), envelope: { publicKey, open } }, 5_000);
    const [{ fit }] = started;
    expect(fit.envelopeKey).toBe(Buffer.from(publicKey).toString("hex"));
    const sealed = {
      round: 2,
      key: fit.key,
      clientId: "c1",
      signerPublicKey: new Uint8Array(32),
      envelope: {},
    } as unknown as EdgeSealed;
    // Another fit's key, or another edge: refused before anything is opened.
    await expect(dispatch.onSealed("edge-0", { ...sealed, key: "someone-elses-key" })).rejects.toMatchObject({
      code: ErrorCode.STALE_ROUND,
    });
    await expect(dispatch.onSealed("edge-1", sealed)).rejects.toMatchObject({ code: ErrorCode.STALE_ROUND });
    // A plaintext update in the edge's outcome is not taken in place of the sealed one.
    dispatch.onOutcome("edge-0", okOutcome(fit, [1, 1, 1], 2));
    expect(await pending).toMatchObject({ ok: false, reason: "rejected", code: ErrorCode.BAD_PAYLOAD });
  });

  it("types every way a fit is lost: link closed, edge without the client, no answer, cancelled", async () => {
    const { links, started, cancels } = fakeLinks(async (_edgeId, fit) => {
      if (fit.clientId === "mute") throw new FedsimError(ErrorCode.EDGE_UNREACHABLE, "no answer in time");
      return fit.clientId !== "gone";
    });
    const notHeld: [string, string][] = [];
    const dispatch = new AsyncEdgeDispatch(links, resolveClientLimits(), (clientId, edgeId) =>
      notHeld.push([clientId, edgeId]),
    );
    const onLost = dispatch.fit("a", "edge-0", request(1), 5_000);
    const onOther = dispatch.fit("b", "edge-1", request(1), 5_000);
    const unheld = dispatch.fit("gone", "edge-1", request(1), 5_000);
    const unanswered = dispatch.fit("mute", "edge-1", request(1), 5_000);
    expect(await unheld).toMatchObject({ ok: false, reason: "disconnect", code: ErrorCode.EDGE_UNREACHABLE });
    expect(await unanswered).toMatchObject({
      ok: false,
      reason: "disconnect",
      code: ErrorCode.EDGE_UNREACHABLE,
    });
    // Only the edge's own word that it does not hold the client makes its roster stale.
    expect(notHeld).toEqual([["gone", "edge-1"]]);
    dispatch.onLinkClosed("edge-0");
    expect(await onLost).toMatchObject({ ok: false, reason: "disconnect", code: ErrorCode.EDGE_LOST });
    dispatch.cancel("b", 0, "not this version");
    dispatch.cancel("b", 1, "the run is over");
    expect(await onOther).toMatchObject({ ok: false, reason: "cancelled", code: ErrorCode.CANCELLED });
    expect(cancels).toEqual([
      {
        edgeId: "edge-1",
        cancel: { round: 1, key: started[1].fit.key, clientId: "b", reason: "the run is over" },
      },
    ]);
  });
});

/** An edge's end of the link, in memory: the coordinator's requests in, the edge's emits recorded. */
class FakeLink extends EventEmitter {
  connected = true;
  readonly sent: EdgeOutcome[] = [];
  override emit(event: string | symbol, ...args: unknown[]): boolean {
    if (event === "edgeOutcome") {
      this.sent.push(args[0] as EdgeOutcome);
      return super.emit("recorded");
    }
    return super.emit(event, ...args);
  }
  /** Resolves once the edge has sent `n` outcomes. */
  async untilSent(n: number): Promise<void> {
    while (this.sent.length < n) await new Promise((resolve) => this.once("recorded", resolve));
  }
  /** The coordinator asks the edge to start a fit; resolves with the edge's answer. */
  ask(fit: unknown): Promise<unknown> {
    return new Promise((resolve) => super.emit("edgeAsyncFit", fit, resolve));
  }
}

function trainingClient(id: string, seen: FitRequest[]): ClientProxy {
  return {
    id,
    fit: async (req) => {
      seen.push(req);
      return { ok: true, clientId: id, numExamples: 5, delta: new Float32Array([0.25, 0.25, 0.25]) };
    },
  };
}

describe("an edge running asynchronous fits", () => {
  it("refuses a malformed request, does not start a client it does not hold, fetches a version once", async () => {
    const link = new FakeLink();
    const seen: FitRequest[] = [];
    const fetched: [number, string][] = [];
    const version: VersionWeights = { weights: { specs, values: new Float32Array([1, 2, 3]) }, frozen: null };
    new EdgeAsyncFits(link as never, {
      edgeId: "edge-0",
      client: (id) => [trainingClient("c1", seen), trainingClient("c2", seen)].find((c) => c.id === id),
      fetchWeights: async (v, key) => {
        fetched.push([v, key]);
        return version;
      },
      log: () => {},
    });
    expect(await link.ask({ version: 2, key: "short" })).toMatchObject({
      ok: false,
      code: ErrorCode.BAD_PAYLOAD,
    });
    const fitOf = (clientId: string, key: string) => ({
      version: 2,
      key,
      clientId,
      deadlineMs: 1000,
      config,
    });
    expect(await link.ask(fitOf("c9", "key-c9-00000"))).toEqual({ ok: true, started: false });
    expect(await link.ask(fitOf("c1", "key-c1-00000"))).toEqual({ ok: true, started: true });
    expect(await link.ask(fitOf("c2", "key-c2-00000"))).toEqual({ ok: true, started: true });
    await link.untilSent(2);
    expect(fetched).toEqual([[2, "key-c1-00000"]]);
    expect(seen.map((r) => r.round)).toEqual([2, 2]);
    for (const outcome of link.sent) {
      expect(outcome).toMatchObject({ ok: true, round: 2, numExamples: 5 });
      expect(outcome.ok && outcome.delta?.byteLength).toBe(12);
    }
    expect(link.sent.map((o) => o.key).sort()).toEqual(["key-c1-00000", "key-c2-00000"]);
  });
});
