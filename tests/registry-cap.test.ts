import { createServer, type Server as HttpServer } from "node:http";
import type { AddressInfo } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { ClientNode } from "../client/node.js";
import { ModelWorkbench } from "../client/workbench.js";
import { clientIdOf, generateIdentity, type Identity } from "../common/crypto/identity.js";
import { ErrorCode } from "../common/errors.js";
import { createAuthGate } from "../server/auth-gate.js";
import { CoordinatorSocketServer } from "../server/socket-server.js";
import { eventually } from "./helpers/eventually.js";
import { expectError } from "./helpers/expect-error.js";

/** The registry of an open (--insecure-open) coordinator under churn of keyed clients. */
interface Registry {
  sockets: CoordinatorSocketServer;
  url: string;
  logs: string[];
  close(): Promise<void>;
}

const EMPTY_DATA = { x: new Float32Array(0), y: new Int32Array(0), n: 0, exampleShape: [1], numClasses: 2 };

async function startRegistry(maxRememberedClients: number): Promise<Registry> {
  const httpServer: HttpServer = createServer();
  const logs: string[] = [];
  const sockets = new CoordinatorSocketServer({
    httpServer,
    model: { topology: null, specs: [] },
    auth: createAuthGate({ kind: "open" }),
    maxPayloadBytes: 1_000_000,
    maxRememberedClients,
    log: (line) => logs.push(line),
  });
  await new Promise<void>((resolve) => httpServer.listen(0, "127.0.0.1", () => resolve()));
  const { port } = httpServer.address() as AddressInfo;
  return {
    sockets,
    url: `http://127.0.0.1:${port}`,
    logs,
    async close() {
      await sockets.close();
      await new Promise<void>((resolve) => httpServer.close(() => resolve()));
    },
  };
}

/** Connects a client (keyed when given an identity), then drops it; resolves once the server saw both. */
async function visit(registry: Registry, identity?: Identity): Promise<string> {
  const before = registry.sockets.count();
  const node = new ClientNode({
    url: registry.url,
    data: EMPTY_DATA,
    workbench: new ModelWorkbench(),
    reconnect: false,
    ...(identity ? { identity } : {}),
  });
  const id = await node.ready;
  await eventually(() => expect(registry.sockets.count()).toBe(before + 1));
  node.close();
  await eventually(() => expect(registry.sockets.count()).toBe(before));
  return id;
}

describe("the client registry's cap on remembered identities", () => {
  let registry: Registry | undefined;
  afterEach(async () => {
    await registry?.close();
    registry = undefined;
  });

  it("a flood of fresh keys keeps at most maxRememberedClients, forgetting the least recently seen", async () => {
    registry = await startRegistry(3);
    const ids: string[] = [];
    for (let i = 0; i < 6; i++) ids.push(await visit(registry, generateIdentity()));
    expect(registry.sockets.knownClients()).toBe(3);
    expect(registry.sockets.knownClientIds()).toEqual(ids.slice(3));
    for (const gone of ids.slice(0, 3)) {
      expect(registry.logs).toContain(`registry: forgot ${gone} (more than 3 clients away)`);
    }
  });

  it("a remembered client is recognised on return, and returning makes it the most recently seen", async () => {
    registry = await startRegistry(2);
    const [a, b, c] = [generateIdentity(), generateIdentity(), generateIdentity()];
    const idA = clientIdOf(a.publicKey);
    const idB = clientIdOf(b.publicKey);
    expect(await visit(registry, a)).toBe(idA);
    await visit(registry, b);
    // A comes back: recognised, and now seen after B.
    await visit(registry, a);
    expect(registry.logs).toContain(`handshake: ${idA} reconnected`);
    const idC = await visit(registry, c);
    // C pushed out B (seen longest ago), not A.
    expect(registry.sockets.knownClientIds()).toEqual([idA, idC]);
    // B is a stranger now: it joins as new rather than as a reconnect.
    await visit(registry, b);
    expect(registry.logs).not.toContain(`handshake: ${idB} reconnected`);
    expect(registry.sockets.knownClientIds()).toEqual([idC, idB]);
  });

  it("connected clients do not count against the cap and are never forgotten", async () => {
    registry = await startRegistry(1);
    const stay = new ClientNode({
      url: registry.url,
      data: EMPTY_DATA,
      workbench: new ModelWorkbench(),
      reconnect: false,
      identity: generateIdentity(),
    });
    const stayId = await stay.ready;
    try {
      for (let i = 0; i < 3; i++) await visit(registry, generateIdentity());
      expect(registry.sockets.count()).toBe(1);
      expect(registry.sockets.knownClients()).toBe(2);
      expect(registry.sockets.knownClientIds()[0]).toBe(stayId);
    } finally {
      stay.close();
    }
  });

  it("anonymous clients are forgotten on disconnect, and cap 0 forgets keyed ones too", async () => {
    registry = await startRegistry(0);
    await visit(registry);
    await visit(registry, generateIdentity());
    expect(registry.sockets.knownClients()).toBe(0);
  });

  it("refuses a cap that is not a whole number ≥ 0, naming the option", () => {
    for (const bad of [-1, 1.5, Number.NaN]) {
      expectError(
        () =>
          new CoordinatorSocketServer({
            httpServer: createServer(),
            model: { topology: null, specs: [] },
            auth: createAuthGate({ kind: "open" }),
            maxPayloadBytes: 1_000_000,
            maxRememberedClients: bad,
            log: () => {},
          }),
        ErrorCode.INVALID_CONFIG,
        "maxRememberedClients",
      );
    }
  });
});
