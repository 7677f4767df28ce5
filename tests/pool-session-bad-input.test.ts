import { createServer, type Server as HttpServer } from "node:http";
import type { AddressInfo } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import type { AuthMode } from "../common/crypto/auth.js";
import { encodePublicKey, generateIdentity } from "../common/crypto/identity.js";
import { ErrorCode } from "../common/errors.js";
import { encodeIndices, virtualClientId } from "../common/pool-protocol.js";
import type { FlatWeights } from "../common/weights.js";
import { createAuthGate } from "../server/auth-gate.js";
import type { ClientProxy, FitOutcome, FitRequest } from "../server/client-proxy.js";
import { CoordinatorSocketServer } from "../server/socket-server.js";
import { eventually, PATIENCE_MS } from "./helpers/eventually.js";
import { RogueClient } from "./helpers/rogue.js";
import { RoguePool } from "./helpers/rogue-pool.js";

const SPECS = [
  { name: "d/kernel", shape: [2, 2] },
  { name: "d/bias", shape: [2] },
];
const CONFIG = { epochs: 1, batchSize: 4, learningRate: 0.1 };

interface Registry {
  sockets: CoordinatorSocketServer;
  url: string;
  close(): Promise<void>;
}

const open: Registry[] = [];
const pools: RoguePool[] = [];

async function startRegistry(auth: AuthMode = { kind: "open" }, maxVirtual?: number): Promise<Registry> {
  const httpServer: HttpServer = createServer();
  const sockets = new CoordinatorSocketServer({
    httpServer,
    model: { topology: null, specs: SPECS },
    auth: createAuthGate(auth),
    maxPayloadBytes: 1_000_000,
    ...(maxVirtual !== undefined ? { maxVirtualClientsPerSession: maxVirtual } : {}),
    log: () => {},
  });
  await new Promise<void>((resolve) => httpServer.listen(0, "127.0.0.1", () => resolve()));
  const registry = {
    sockets,
    url: `http://127.0.0.1:${(httpServer.address() as AddressInfo).port}`,
    async close() {
      await sockets.close();
      await new Promise<void>((resolve) => httpServer.close(() => resolve()));
    },
  };
  open.push(registry);
  return registry;
}

async function openPool(registry: Registry, indices: number[]): Promise<RoguePool> {
  const pool = await RoguePool.connect(registry.url);
  pools.push(pool);
  expect((await pool.open()).ok).toBe(true);
  expect(await pool.join(indices)).toEqual({ ok: true, online: indices.length });
  return pool;
}

function weights(): FlatWeights {
  return { specs: SPECS, values: new Float32Array(6).fill(0.5) };
}

function request(round: number, w: FlatWeights = weights()): FitRequest {
  return { round, config: CONFIG, weights: w, frozen: null };
}

function proxyOf(registry: Registry, pool: RoguePool, index: number): ClientProxy {
  const id = virtualClientId(pool.identity.publicKey, index);
  const proxy = registry.sockets.connected().find((c) => c.id === id);
  if (!proxy) throw new Error(`no proxy for ${id}`);
  return proxy;
}

afterEach(async () => {
  for (const pool of pools.splice(0)) pool.close();
  for (const registry of open.splice(0)) await registry.close();
});

describe("pool session handshake", () => {
  it("refuses a pool without a key, pool events before a session, and a second hello", async () => {
    const registry = await startRegistry();
    const keyless = await RogueClient.connect(registry.url);
    expect(await keyless.hello({ pool: true })).toMatchObject({ ok: false, code: ErrorCode.UNAUTHORIZED });
    keyless.close();

    const early = await RoguePool.connect(registry.url);
    pools.push(early);
    expect(await early.join([0])).toMatchObject({ ok: false, code: ErrorCode.UNKNOWN_CLIENT });
    expect((await early.open()).ok).toBe(true);
    expect(await early.open()).toMatchObject({ ok: false, code: ErrorCode.DUPLICATE });
  });

  it("under an allowlist admits only a listed pool key", async () => {
    const listed = generateIdentity();
    const registry = await startRegistry({
      kind: "allowlist",
      publicKeys: new Set([encodePublicKey(listed.publicKey)]),
    });
    const stranger = await RoguePool.connect(registry.url);
    pools.push(stranger);
    expect(await stranger.open()).toMatchObject({ ok: false, code: ErrorCode.UNAUTHORIZED });
    const pool = await RoguePool.connect(registry.url, listed);
    pools.push(pool);
    expect((await pool.open()).ok).toBe(true);
    expect(await pool.join([3])).toEqual({ ok: true, online: 1 });
    expect(registry.sockets.connected().map((c) => c.id)).toEqual([virtualClientId(listed.publicKey, 3)]);
  });

  it("refuses malformed indices, too many clients, and an index another session of the key hosts", async () => {
    const registry = await startRegistry({ kind: "open" }, 3);
    const pool = await openPool(registry, [0, 1]);
    expect(await pool.emit("poolJoin", { indices: new Uint8Array(3) })).toMatchObject({
      ok: false,
      code: ErrorCode.BAD_PAYLOAD,
    });
    expect(await pool.emit("poolJoin", { indices: [1, 2] })).toMatchObject({
      ok: false,
      code: ErrorCode.BAD_PAYLOAD,
    });
    expect(await pool.join([2, 3])).toMatchObject({ ok: false, code: ErrorCode.TOO_MANY_CLIENTS });
    expect(await pool.leave([7])).toMatchObject({ ok: false, code: ErrorCode.UNKNOWN_CLIENT });
    const twin = await RoguePool.connect(registry.url, pool.identity);
    pools.push(twin);
    expect((await twin.open()).ok).toBe(true);
    expect(await twin.join([1])).toMatchObject({ ok: false, code: ErrorCode.DUPLICATE });
    expect(registry.sockets.count()).toBe(2);
  });

  it("lets another session of the key host a client only once its session released it", async () => {
    const registry = await startRegistry({ kind: "open" });
    const pool = await openPool(registry, [0, 1]);
    const twin = await RoguePool.connect(registry.url, pool.identity);
    pools.push(twin);
    expect((await twin.open()).ok).toBe(true);
    // Offline is not released: the session still hosts the client.
    expect(await pool.leave([1])).toEqual({ ok: true, online: 1 });
    expect(await twin.join([1])).toMatchObject({ ok: false, code: ErrorCode.DUPLICATE });
    const pending = proxyOf(registry, pool, 0).fit(request(1), PATIENCE_MS);
    await pool.nextFit();
    expect(await pool.emit("poolLeave", { indices: encodeIndices([0, 1]), release: "yes" })).toMatchObject({
      ok: false,
      code: ErrorCode.BAD_PAYLOAD,
    });
    expect(await pool.emit("poolLeave", { indices: encodeIndices([0, 1]), release: true })).toEqual({
      ok: true,
      online: 0,
    });
    // The released client's pending fit fails as a disconnect, as when a lone client leaves.
    expect(await pending).toMatchObject({
      ok: false,
      reason: "disconnect",
      code: ErrorCode.CLIENT_DISCONNECTED,
    });
    expect(await pool.leave([0])).toMatchObject({ ok: false, code: ErrorCode.UNKNOWN_CLIENT });
    expect(await twin.join([0, 1])).toEqual({ ok: true, online: 2 });
    expect(registry.sockets.knownClients()).toBe(2);
  });
});

describe("pool session fit replies", () => {
  it("validates every reply like a lone client's: unknown client, shapes, NaN, replay, stale", async () => {
    const registry = await startRegistry();
    const pool = await openPool(registry, [0, 1]);
    const w = weights();
    const first = proxyOf(registry, pool, 0).fit(request(1, w), PATIENCE_MS);
    const second = proxyOf(registry, pool, 1).fit(request(1, w), PATIENCE_MS);
    const fit0 = await pool.nextFit();
    const fit1 = await pool.nextFit();
    // Both fits refer to one copy of the weights.
    expect(pool.weights.map((v) => v.version)).toEqual([fit0.version]);
    expect(fit1.version).toBe(fit0.version);

    expect(await pool.send({ nonce: fit0.nonce })).toMatchObject({ ok: false, code: ErrorCode.BAD_PAYLOAD });
    expect(await pool.send(pool.result(fit0, undefined, { index: 9 }))).toMatchObject({
      ok: false,
      code: ErrorCode.UNKNOWN_CLIENT,
    });
    expect(await pool.send(pool.result(fit0, undefined, { index: 1 }))).toMatchObject({
      ok: false,
      code: ErrorCode.NOT_SAMPLED,
    });
    const nan = new Float32Array(6);
    nan[2] = Number.NaN;
    expect(await pool.send(pool.result(fit1, nan))).toMatchObject({ ok: false, code: ErrorCode.NON_FINITE });
    expect(await second).toMatchObject({ ok: false, reason: "rejected", code: ErrorCode.NON_FINITE });

    expect(await pool.send(pool.result(fit0, new Float32Array(5)))).toMatchObject({
      ok: false,
      code: ErrorCode.BAD_SHAPE,
    });
    expect(await first).toMatchObject({ ok: false, reason: "rejected", code: ErrorCode.BAD_SHAPE });
    expect(await pool.send(pool.result(fit0))).toMatchObject({ ok: false, code: ErrorCode.DUPLICATE });

    const again = proxyOf(registry, pool, 0).fit(request(2), PATIENCE_MS);
    const fit2 = await pool.nextFit();
    expect(await pool.send(pool.result(fit2, undefined, { round: 1 }))).toMatchObject({
      ok: false,
      code: ErrorCode.STALE_ROUND,
    });
    expect(await again).toMatchObject({ ok: false, code: ErrorCode.STALE_ROUND });

    const good = proxyOf(registry, pool, 0).fit(request(3), PATIENCE_MS);
    const fit3 = await pool.nextFit();
    const delta = Float32Array.from([1, 2, 3, 4, 5, 6]);
    expect(await pool.send(pool.result(fit3, delta))).toEqual({ ok: true });
    const outcome = (await good) as Extract<FitOutcome, { ok: true }>;
    expect(outcome.ok).toBe(true);
    expect(outcome.clientId).toBe(virtualClientId(pool.identity.publicKey, 0));
    expect(Array.from(outcome.delta)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(await pool.send(pool.result(fit3, delta))).toMatchObject({ ok: false, code: ErrorCode.REPLAY });
    expect(await pool.send(pool.result(fit1))).toMatchObject({ ok: false, code: ErrorCode.STALE_ROUND });
  });

  it("holds virtual clients to the coordinator's bounds on update norm and example count", async () => {
    const registry = await startRegistry();
    const pool = await openPool(registry, [0, 1]);
    const huge = proxyOf(registry, pool, 0).fit(request(1), PATIENCE_MS);
    const fit0 = await pool.nextFit();
    expect(await pool.send(pool.result(fit0, new Float32Array(6).fill(1e7)))).toMatchObject({
      ok: false,
      code: ErrorCode.NORM_TOO_LARGE,
    });
    expect(await huge).toMatchObject({ ok: false, code: ErrorCode.NORM_TOO_LARGE });
    const many = proxyOf(registry, pool, 1).fit(request(1), PATIENCE_MS);
    const fit1 = await pool.nextFit();
    const result = pool.result(fit1);
    const update = result.update as Record<string, unknown>;
    expect(await pool.send({ ...result, update: { ...update, numExamples: 1e9 } })).toMatchObject({
      ok: false,
      code: ErrorCode.EXAMPLES_OUT_OF_RANGE,
    });
    expect(await many).toMatchObject({ ok: false, code: ErrorCode.EXAMPLES_OUT_OF_RANGE });
  });

  it("times out, cancels, and refuses the late reply as stale", async () => {
    const registry = await startRegistry();
    const pool = await openPool(registry, [0]);
    const outcome = proxyOf(registry, pool, 0).fit(request(1), 200);
    const fit = await pool.nextFit();
    await pool.cancelled(fit.nonce);
    expect(await outcome).toMatchObject({ ok: false, reason: "timeout", code: ErrorCode.CLIENT_TIMEOUT });
    expect(await pool.send(pool.result(fit))).toMatchObject({ ok: false, code: ErrorCode.STALE_ROUND });
  });

  it("fails pending fits when a client leaves or the pool disconnects, and refuses envelopes", async () => {
    const registry = await startRegistry();
    const pool = await openPool(registry, [0, 1]);
    const sealed = await proxyOf(registry, pool, 0).fit(
      { ...request(1), envelope: { publicKey: new Uint8Array(32), open: async () => new Uint8Array(0) } },
      PATIENCE_MS,
    );
    expect(sealed).toMatchObject({ ok: false, code: ErrorCode.INCOMPATIBLE_OPTIONS });

    const leaving = proxyOf(registry, pool, 0).fit(request(1), PATIENCE_MS);
    await pool.nextFit();
    expect(await pool.leave([0])).toEqual({ ok: true, online: 1 });
    expect(await leaving).toMatchObject({ ok: false, reason: "disconnect" });
    expect(registry.sockets.count()).toBe(1);

    const dropped = proxyOf(registry, pool, 1).fit(request(1), PATIENCE_MS);
    await pool.nextFit();
    pool.close();
    expect(await dropped).toMatchObject({
      ok: false,
      reason: "disconnect",
      code: ErrorCode.CLIENT_DISCONNECTED,
    });
    await eventually(() => expect(registry.sockets.knownClients()).toBe(0));
  });

  it("a pool's socket is no client: a plain fitResult on it is refused", async () => {
    const registry = await startRegistry();
    const pool = await openPool(registry, [0]);
    expect(await pool.emit("fitResult", { round: 1, nonce: "0123456789abcdef" })).toMatchObject({
      ok: false,
      code: ErrorCode.UNKNOWN_CLIENT,
    });
  });
});
