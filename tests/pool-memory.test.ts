import { createServer, type Server as HttpServer } from "node:http";
import type { AddressInfo } from "node:net";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { generateIdentity } from "../common/crypto/identity.js";
import { parseScenario } from "../scenarios/schema.js";
import { VirtualPool } from "../scenarios/sim/virtual-pool.js";
import { createAuthGate } from "../server/auth-gate.js";
import { CoordinatorSocketServer } from "../server/socket-server.js";
import { RoguePool } from "./helpers/rogue-pool.js";

/**
 * What an idle virtual client costs, measured as the heap a hundred thousand of them add after a
 * full collection. Heap sizes after gc are deterministic enough for a bound with a wide margin;
 * nothing here is timed.
 */
const CLIENTS = 100_000;
/** The bound is 2 KB per idle client; the assertions keep a margin below it. */
const BOUND_BYTES = 1536;

setFlagsFromString("--expose-gc");
const gc = runInNewContext("gc") as () => void;

function heapAfterGc(): number {
  for (let i = 0; i < 3; i++) gc();
  return process.memoryUsage().heapUsed;
}

let httpServer: HttpServer;
let sockets: CoordinatorSocketServer;
let url: string;

beforeAll(async () => {
  httpServer = createServer();
  sockets = new CoordinatorSocketServer({
    httpServer,
    model: { topology: null, specs: [{ name: "d/kernel", shape: [2, 2] }] },
    auth: createAuthGate({ kind: "open" }),
    maxPayloadBytes: 1_000_000,
    log: () => {},
  });
  await new Promise<void>((resolve) => httpServer.listen(0, "127.0.0.1", () => resolve()));
  url = `http://127.0.0.1:${(httpServer.address() as AddressInfo).port}`;
});

afterAll(async () => {
  await sockets.close();
  await new Promise<void>((resolve) => httpServer.close(() => resolve()));
});

describe("idle virtual clients", () => {
  it(`cost the coordinator's registry at most ${BOUND_BYTES} bytes each at ${CLIENTS}`, async () => {
    const pool = await RoguePool.connect(url);
    try {
      expect((await pool.open()).ok).toBe(true);
      const indices = Array.from({ length: CLIENTS }, (_, i) => i);
      const before = heapAfterGc();
      expect(await pool.join(indices)).toEqual({ ok: true, online: CLIENTS });
      const after = heapAfterGc();
      expect(sockets.count()).toBe(CLIENTS);
      expect(sockets.connected()).toHaveLength(CLIENTS);
      const perClient = (after - before) / CLIENTS;
      expect(perClient).toBeGreaterThan(0);
      expect(perClient).toBeLessThan(BOUND_BYTES);
    } finally {
      pool.close();
    }
  });

  it(`cost the pool host at most ${BOUND_BYTES} bytes each at ${CLIENTS}`, async () => {
    const scenario = parseScenario({
      name: "idle",
      dataset: { name: "mnist", limitTrain: 2000 },
      partition: { kind: "sample", size: 20 },
      clients: CLIENTS,
      rounds: 1,
    });
    const hosted = async (count: number) => {
      const pool = new VirtualPool({
        url,
        scenario,
        clientIndices: Array.from({ length: count }, (_, i) => i),
        identity: generateIdentity(),
      });
      await pool.prepare();
      const heap = heapAfterGc();
      return { pool, heap };
    };
    // One client first, so that the data, the model code and the socket are in both figures.
    const baseline = await hosted(1);
    baseline.pool.close();
    const full = await hosted(CLIENTS);
    try {
      expect(full.pool.hosted()).toHaveLength(CLIENTS);
      const perClient = (full.heap - baseline.heap) / (CLIENTS - 1);
      expect(perClient).toBeLessThan(BOUND_BYTES);
    } finally {
      full.pool.close();
    }
  });
});
