import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { Server } from "socket.io";
import { io, type Socket } from "socket.io-client";
import { afterEach, describe, expect, it } from "vitest";
import { ErrorCode, type FedsimError } from "../common/errors.js";
import { decodeIndices } from "../common/pool-protocol.js";
import type { Ack } from "../common/protocol.js";
import { PoolHub, type PoolHubEvent } from "../scenarios/pool-hub.js";
import { parseScenario } from "../scenarios/schema.js";
import { eventually, PATIENCE_MS } from "./helpers/eventually.js";

/** The run's side of remote pools against hand-driven pool hosts on a real Socket.IO server. */
const TOKEN = "pool-hub-test-token";
const open: { close(): Promise<void> }[] = [];
/** Which host received each assignment, across hosts, in order. */
const order: string[] = [];

async function startHub(clients = 8) {
  const http = createServer();
  const server = new Server(http);
  await new Promise<void>((resolve) => http.listen(0, "127.0.0.1", resolve));
  const url = `http://127.0.0.1:${(http.address() as AddressInfo).port}`;
  const events: PoolHubEvent[] = [];
  const scenario = parseScenario({ name: "hub", clients, model: "tiny-mlp", backend: "cpu" });
  const hub = new PoolHub({
    io: server,
    scenario,
    backend: "cpu",
    runId: "the-run",
    token: TOKEN,
    minPools: 1,
    waitMs: PATIENCE_MS,
    log: () => {},
    onEvent: (e) => events.push(e),
  });
  open.push({ close: () => new Promise<void>((resolve) => server.close(() => resolve())) });
  return { hub, url, server, events };
}

/** A pool host driven by hand: joins, says ready, and answers assignments (or refuses them). */
class FakeHost {
  readonly socket: Socket;
  /** Every assignment received, in order: [round, indices]. */
  readonly assigned: [number, number[]][] = [];
  refuse = false;

  constructor(
    url: string,
    readonly name = "",
  ) {
    this.socket = io(`${url}/pools`, { transports: ["websocket"], reconnection: false, forceNew: true });
    this.socket.on(
      "assign",
      (message: { round: number; indices: Uint8Array }, ack: (a: Ack<{ hosted?: number }>) => void) => {
        const indices = [...decodeIndices(new Uint8Array(message.indices))];
        this.assigned.push([message.round, indices]);
        order.push(this.name);
        ack(
          this.refuse
            ? { ok: false, code: ErrorCode.INTERNAL, message: "no" }
            : { ok: true, hosted: indices.length },
        );
      },
    );
    open.push({ close: async () => void this.socket.close() });
  }

  emit(event: string, ...args: unknown[]): Promise<Record<string, unknown>> {
    return this.socket.timeout(PATIENCE_MS).emitWithAck(event, ...args);
  }

  async join(cores: number, name: string, fields: Record<string, unknown> = {}) {
    return this.emit("join", { run: "the-run", token: TOKEN, cores, name, ...fields });
  }

  /** The indices of its latest assignment. */
  hosted(): number[] {
    return this.assigned.at(-1)?.[1] ?? [];
  }
}

async function readyHost(url: string, cores: number, name: string): Promise<FakeHost> {
  const host = new FakeHost(url, name);
  expect(await host.join(cores, name)).toMatchObject({ ok: true });
  expect(await host.emit("ready")).toEqual({ ok: true });
  return host;
}

afterEach(async () => {
  for (const o of open.splice(0).reverse()) await o.close();
});

describe("pool hub", () => {
  it("refuses a bad join with a typed error, and answers a good one with the run's scenario", async () => {
    const { url } = await startHub();
    const early = new FakeHost(url);
    expect(await early.emit("ready")).toMatchObject({ ok: false, code: ErrorCode.UNKNOWN_CLIENT });
    const cases: [Record<string, unknown>, string][] = [
      [{ token: "not-the-token-at-all" }, ErrorCode.UNAUTHORIZED],
      [{ run: "another-run" }, ErrorCode.WRONG_RUN],
      [{ cores: 0 }, ErrorCode.BAD_PAYLOAD],
      [{ cores: Number.NaN }, ErrorCode.BAD_PAYLOAD],
      [{ extra: true }, ErrorCode.BAD_PAYLOAD],
    ];
    for (const [fields, code] of cases) {
      const host = new FakeHost(url);
      expect(await host.join(1, "bad", fields)).toMatchObject({ ok: false, code });
    }
    const good = new FakeHost(url);
    const welcome = await good.join(2, "good");
    expect(welcome).toMatchObject({ ok: true, address: "127.0.0.1", backend: "cpu" });
    expect(welcome.poolId).toMatch(/^p-[0-9a-f]{8}$/);
    expect((welcome.scenario as { clients: number }).clients).toBe(8);
    expect(await good.join(2, "again")).toMatchObject({ ok: false, code: ErrorCode.DUPLICATE });
  });

  it("between an asynchronous run's steps moves only idle clients, and the training ones once they finish", async () => {
    const { hub, url, events } = await startHub(8);
    const a = await readyHost(url, 1, "a");
    await hub.betweenSteps(1, () => new Set());
    expect(a.hosted()).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    const b = await readyHost(url, 1, "b");
    // Six of a's clients are training: of b's four, only the two idle ones move now.
    let training = new Set([0, 1, 2, 3, 4, 5]);
    await hub.betweenSteps(2, () => training);
    expect(a.hosted()).toEqual([0, 1, 2, 3, 4, 5]);
    expect(b.hosted()).toEqual([6, 7]);
    // While they all still train, nothing is sent.
    const sent = a.assigned.length + b.assigned.length;
    await hub.betweenSteps(2, () => training);
    expect(a.assigned.length + b.assigned.length).toBe(sent);
    training = new Set([0, 1, 2, 3, 9]);
    await hub.betweenSteps(3, () => training);
    expect(a.hosted()).toEqual([0, 1, 2, 3]);
    expect(b.hosted()).toEqual([4, 5, 6, 7]);
    const assigned = events.filter((e) => e.type === "assigned");
    expect(assigned.map((e) => [e.round, e.pools.map((p) => p.hosted.length)])).toEqual([
      [1, [8]],
      [2, [6, 2]],
      [3, [4, 4]],
    ]);
  });

  it("spreads the clients by cores, moves only what changes, releasing before anyone takes", async () => {
    const { hub, url, events } = await startHub(8);
    const a = await readyHost(url, 1, "a");
    const b = await readyHost(url, 3, "b");
    await hub.beforeRound(1);
    expect(a.hosted()).toEqual([0, 1]);
    expect(b.hosted()).toEqual([2, 3, 4, 5, 6, 7]);
    // Nothing changed: no message at all.
    await hub.beforeRound(2);
    expect([a.assigned.length, b.assigned.length]).toEqual([1, 1]);

    const c = await readyHost(url, 4, "c");
    order.length = 0;
    await hub.beforeRound(3);
    // 8 · (1, 3, 4)/8: a and b give up what they lose first, then c takes it.
    expect(a.assigned.slice(1)).toEqual([[3, [0]]]);
    expect(b.assigned.slice(1)).toEqual([[3, [2, 3, 4]]]);
    expect(c.assigned).toEqual([[3, [1, 5, 6, 7]]]);
    expect(order.indexOf("c")).toBe(2);

    // b leaves: its clients go to a and c by their cores (8 · 1/5 → 2, 8 · 4/5 → 6).
    b.socket.close();
    await eventually(() => expect(hub.readyPools().map((p) => p.name)).toEqual(["a", "c"]));
    await hub.beforeRound(4);
    expect(a.hosted()).toEqual([0, 2]);
    expect(c.hosted()).toEqual([1, 3, 4, 5, 6, 7]);
    expect(events.filter((e) => e.type === "assigned").map((e) => e.round)).toEqual([1, 3, 4]);
  });

  it("drops a pool that refuses its share, and closes the sessions of a pool that leaves", async () => {
    const { hub, url, events } = await startHub(6);
    const a = await readyHost(url, 1, "a");
    const b = new FakeHost(url, "b");
    const welcome = await b.join(1, "b");
    expect(await b.emit("ready")).toEqual({ ok: true });
    // One of b's workers, on the main namespace.
    const worker = io(url, {
      transports: ["websocket"],
      reconnection: false,
      forceNew: true,
      auth: { poolHost: String(welcome.poolId) },
    });
    open.push({ close: async () => void worker.close() });
    await new Promise<void>((resolve) => worker.once("connect", () => resolve()));
    const workerGone = new Promise((resolve) => worker.once("disconnect", resolve));
    b.refuse = true;
    await hub.beforeRound(1);
    expect(a.hosted()).toEqual([0, 1, 2, 3, 4, 5]);
    expect(await workerGone).toBe("io server disconnect");
    const left = events.find((e) => e.type === "left");
    expect(left).toMatchObject({ pool: { name: "b" } });
    expect(String((left as { reason: string }).reason)).toContain(ErrorCode.INTERNAL);
  });
});

describe("remotePools in a scenario", () => {
  const base = { name: "r", model: "tiny-mlp", remotePools: { port: 0 } } as const;

  it("refuses what remote pools cannot serve, one line each", () => {
    try {
      parseScenario({
        ...base,
        external: { clients: 1 },
        privacy: { envelope: true },
        availability: { schedule: [{ clients: [0], offline: { from: 1, to: 2 } }] },
      });
      throw new Error("expected INVALID_SCENARIO");
    } catch (err) {
      expect(err).toMatchObject({ code: ErrorCode.INVALID_SCENARIO });
      const details = (err as FedsimError).details.join("\n");
      for (const what of ["with external", "with privacy.envelope or privacy.secagg", "with availability"]) {
        expect(details).toContain(`remotePools: cannot be combined ${what}`);
      }
    }
    expect(() => parseScenario({ ...base, remotePools: { runId: "a run" } })).toThrow(
      expect.objectContaining({ details: [expect.stringContaining("remotePools.runId")] }),
    );
  });
});
