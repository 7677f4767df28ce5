import { randomBytes } from "node:crypto";
import { afterEach, describe, expect, it } from "vitest";
import { ErrorCode } from "../common/errors.js";
import type { FedsimSocket } from "../server/socket-proxy.js";
import { eventually, PATIENCE_MS } from "./helpers/eventually.js";
import { type RogueFederation, startRogueFederation } from "./helpers/rogue.js";

/** A `sleep` for ClientNode that holds each nap until the test wakes it. */
function napper() {
  const naps: (() => void)[] = [];
  const waiting: ((wake: () => void) => void)[] = [];
  return {
    sleep: () =>
      new Promise<void>((resolve) => {
        const waiter = waiting.shift();
        if (waiter) waiter(resolve);
        else naps.push(resolve);
      }),
    /** Resolves, once the node is asleep, with the function that wakes it. */
    nextNap: () =>
      new Promise<() => void>((resolve) => {
        const nap = naps.shift();
        if (nap) resolve(nap);
        else waiting.push(resolve);
      }),
  };
}

/**
 * The client's record of cancelled requests, against a coordinator that floods it with cancels
 * for nonces it never issued: the node keeps state only for the fits in flight, and a real
 * cancel still stops its fit.
 */
describe("a client node under a flood of cancels", () => {
  let fed: RogueFederation | undefined;
  afterEach(async () => {
    await fed?.close();
    fed = undefined;
  });

  it("holds only its fits in flight, and still honours the cancel of its own request", async () => {
    const naps = napper();
    const logs: string[] = [];
    fed = await startRogueFederation({
      rogues: 0,
      coordinator: { rounds: 2 },
      honestOptions: (i) =>
        i === 0
          ? { behaviour: { downloadDelayMs: () => 1 }, sleep: naps.sleep, log: (line) => logs.push(line) }
          : {},
    });
    const [node, other] = fed.honest;
    const server = [...fed.coordinator.sockets.io.sockets.sockets.values()].find(
      (s) => s.data.clientId === node.clientId,
    ) as FedsimSocket | undefined;
    if (!server) throw new Error("no server socket for the node");
    // `evaluate` is acked and a socket's messages are handled in order: once it answers (here with
    // a refusal of the empty instructions), every message sent before it has been handled.
    const handled = async () =>
      expect(await server.timeout(PATIENCE_MS).emitWithAck("evaluate", {} as never)).toMatchObject({
        ok: false,
        code: ErrorCode.BAD_PAYLOAD,
      });
    const run = fed.coordinator.run();

    const wakeFirst = await naps.nextNap();
    expect(node.fitsPending).toBe(1);
    for (let i = 0; i < 2_000; i++) {
      server.emit("cancel", { round: 1, nonce: randomBytes(12).toString("hex"), reason: "flood" });
    }
    await handled();
    expect(node.fitsPending).toBe(1);
    wakeFirst();

    const wakeSecond = await naps.nextNap();
    const proxy = fed.coordinator.sockets.connected().find((c) => c.id === node.clientId);
    proxy?.cancel?.(2, "called off by the test");
    await handled();
    wakeSecond();
    const result = await run;

    expect(result.rounds[0]).toMatchObject({ participants: 2, failures: 0 });
    expect(result.rounds[1]).toMatchObject({ participants: 1, failures: 0, cancelled: 1 });
    await eventually(() =>
      expect(logs.join("\n")).toMatch(/round 2: not training: cancelled by the coordinator/),
    );
    await eventually(() => expect(other.roundsTrained).toBe(2));
    expect(node.fitsPending).toBe(0);
    expect(node.roundsTrained).toBe(1);
  });
});
