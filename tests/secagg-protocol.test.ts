import nacl from "tweetnacl";
import { afterEach, describe, expect, it, vi } from "vitest";
import {
  bytesToVector,
  chooseScale,
  dequantizeSum,
  quantize,
  runSecAggInMemory,
  SecAggClientSession,
  secAggPlusGraph,
} from "../common/crypto/secagg/index.js";
import { ErrorCode } from "../common/errors.js";
import { driveThroughShareKeys, firstDifference, modSum, randomVector } from "./secagg-helpers.js";

const ids = (n: number) => Array.from({ length: n }, (_, i) => `c${String(i).padStart(2, "0")}`);
const LENGTH = 1000;

function inputsFor(clientIds: string[], length = LENGTH): Map<string, Uint32Array> {
  return new Map(clientIds.map((id, i) => [id, randomVector(length, 1000 + i)]));
}

const withCode = (code: string) => expect.objectContaining({ code });

describe("masks cancel", () => {
  for (const graph of ["complete", "secagg+"] as const) {
    for (const n of [10, 30]) {
      it(`${graph}, ${n} clients: the unmasked sum is the mod-2^32 sum, bit for bit`, async () => {
        const inputs = inputsFor(ids(n));
        const sum = await runSecAggInMemory(inputs, { graph, graphSeed: n });
        expect(firstDifference(sum, modSum(inputs.values(), LENGTH))).toBe(-1);
      });
    }
  }

  it("quantised floats come back as their sum within n/(2·scale)", async () => {
    const clientIds = ids(5);
    const clipRange = 2;
    const scale = chooseScale(clipRange, clientIds.length);
    const floats = clientIds.map((_, c) =>
      Float32Array.from({ length: 300 }, (_, i) => Math.sin(i * 0.1 + c) * 1.5),
    );
    const inputs = new Map(clientIds.map((id, c) => [id, quantize(floats[c], { clipRange, scale })]));
    const total = dequantizeSum(await runSecAggInMemory(inputs, { graph: "complete" }), scale);
    for (let i = 0; i < 300; i++) {
      const expected = floats.reduce((acc, f) => acc + f[i], 0);
      expect(Math.abs(total[i] - expected)).toBeLessThanOrEqual(clientIds.length / (2 * scale) + 1e-6);
    }
  });

  it("a masked input alone is not the input", async () => {
    const round = await driveThroughShareKeys(ids(3));
    const input = randomVector(LENGTH, 5);
    const masked = round.clients.get("c00")!.maskedInput(round.routed.c00, input);
    const vector = bytesToVector(masked.masked);
    let same = 0;
    for (let i = 0; i < LENGTH; i++) if (vector[i] === input[i]) same++;
    expect(same).toBeLessThan(3);
  });
});

describe("dropout recovery", () => {
  const n = 10; // complete graph: k = 9, default threshold 7 of 10 holders

  it("dropping up to n−t clients after ShareKeys gives the exact sum of the survivors", async () => {
    const inputs = inputsFor(ids(n));
    for (const dropped of [["c03"], ["c00", "c05", "c09"]]) {
      const sum = await runSecAggInMemory(inputs, { graph: "complete", dropAfterShareKeys: dropped });
      const survivors = [...inputs].filter(([id]) => !dropped.includes(id)).map(([, v]) => v);
      expect(firstDifference(sum, modSum(survivors, LENGTH))).toBe(-1);
    }
  });

  it("dropping more than n−t clients is refused with SECAGG_THRESHOLD naming survivors and threshold", async () => {
    const inputs = inputsFor(ids(n));
    const run = runSecAggInMemory(inputs, {
      graph: "complete",
      dropAfterShareKeys: ["c01", "c02", "c03", "c04"],
    });
    await expect(run).rejects.toThrow(withCode(ErrorCode.SECAGG_THRESHOLD));
    await expect(run).rejects.toThrow(/6 of 10 clients survived.*threshold 7/);
  });

  it("a lower explicit threshold tolerates more dropouts, down to its own limit", async () => {
    const inputs = inputsFor(ids(n));
    const dropped = ["c01", "c02", "c03", "c04"];
    const sum = await runSecAggInMemory(inputs, {
      graph: "complete",
      threshold: 6,
      dropAfterShareKeys: dropped,
    });
    const survivors = [...inputs].filter(([id]) => !dropped.includes(id)).map(([, v]) => v);
    expect(firstDifference(sum, modSum(survivors, LENGTH))).toBe(-1);
    await expect(
      runSecAggInMemory(inputs, { graph: "complete", threshold: 6, dropAfterShareKeys: [...dropped, "c05"] }),
    ).rejects.toThrow(withCode(ErrorCode.SECAGG_THRESHOLD));
  });

  it("SecAgg+ recovers from dropouts per neighbourhood", async () => {
    const inputs = inputsFor(ids(30));
    const dropped = ["c02", "c13", "c27"]; // degree 10, threshold 8 of 11: any 3 dropouts are fine
    const sum = await runSecAggInMemory(inputs, {
      graph: "secagg+",
      graphSeed: 4,
      dropAfterShareKeys: dropped,
    });
    const survivors = [...inputs].filter(([id]) => !dropped.includes(id)).map(([, v]) => v);
    expect(firstDifference(sum, modSum(survivors, LENGTH))).toBe(-1);
  });

  it("SecAgg+ refuses when one neighbourhood loses too many", async () => {
    const clientIds = ids(30);
    const graph = secAggPlusGraph(clientIds, { seed: 4 });
    const victim = "c05";
    const dropped = graph[victim].slice(0, 4); // 11 holders − 4 = 7 < threshold 8
    const run = runSecAggInMemory(inputsFor(clientIds), {
      graph: "secagg+",
      graphSeed: 4,
      dropAfterShareKeys: dropped,
    });
    await expect(run).rejects.toThrow(withCode(ErrorCode.SECAGG_THRESHOLD));
  });
});

describe("unmasking with late answers", () => {
  it("too few unmask responses → SECAGG_THRESHOLD, and unmask succeeds once enough arrive", async () => {
    const clientIds = ids(5);
    const round = await driveThroughShareKeys(clientIds, { threshold: 3 });
    const inputs = inputsFor(clientIds, 64);
    for (const id of clientIds) {
      round.server.receiveMaskedInput(
        id,
        round.clients.get(id)!.maskedInput(round.routed[id], inputs.get(id)!),
      );
    }
    const requests = round.server.unmaskRequests();
    for (const id of ["c00", "c01"])
      round.server.receiveUnmaskResponse(id, round.clients.get(id)!.unmask(requests[id]));
    await expect(round.server.unmask()).rejects.toThrow(/2 of 5 clients answered.*threshold 3/);
    round.server.receiveUnmaskResponse("c02", round.clients.get("c02")!.unmask(requests.c02));
    const sum = await round.server.unmask();
    expect(firstDifference(sum, modSum(inputs.values(), 64))).toBe(-1);
    expect(round.server.phase).toBe("done");
  });

  it("the server refuses a response that reveals shares it did not ask for", async () => {
    const round = await driveThroughShareKeys(ids(4), { threshold: 3 });
    for (const id of ids(4)) {
      round.server.receiveMaskedInput(
        id,
        round.clients.get(id)!.maskedInput(round.routed[id], randomVector(8, 3)),
      );
    }
    const requests = round.server.unmaskRequests();
    const response = round.clients.get("c00")!.unmask(requests.c00);
    const forged = { ...response, secretKeyShares: [{ owner: "c01", share: response.seedShares[1].share }] };
    expect(() => round.server.receiveUnmaskResponse("c00", forged)).toThrow(
      withCode(ErrorCode.SECAGG_PROTOCOL),
    );
  });
});

describe("refusals that protect the secrets", () => {
  it("a client asked for both shares of one client refuses (SECAGG_PROTOCOL)", async () => {
    const round = await driveThroughShareKeys(ids(5));
    const client = round.clients.get("c00")!;
    client.maskedInput(round.routed.c00, randomVector(10, 1));
    const base = { round: 7, recipient: "c00" };
    // c01 in both sets, with c04 left out so that the counts alone look right.
    const both = { ...base, dropped: ["c01"], survived: ["c00", "c01", "c02", "c03"] };
    expect(() => client.unmask(both)).toThrow(withCode(ErrorCode.SECAGG_PROTOCOL));
    expect(() => client.unmask(both)).toThrow(/both shares of c01/);
    const refusals = [
      { dropped: ["c01"], survived: ["c00", "c01", "c02", "c03", "c04"] }, // c01 in both sets
      { dropped: ["c00"], survived: ["c01", "c02", "c03", "c04"] }, // itself dropped
      { dropped: [], survived: ["c00", "c01", "c02", "c03"] }, // leaves c04 out
      { dropped: ["c99"], survived: ["c00", "c01", "c02", "c03", "c04"] }, // not a neighbour
      { dropped: [], survived: ["c00", "c01", "c01", "c02", "c03", "c04"] }, // listed twice
    ];
    for (const request of refusals) {
      expect(() => client.unmask({ ...base, ...request })).toThrow(withCode(ErrorCode.SECAGG_PROTOCOL));
    }
    // The refusals changed nothing: a consistent request is still answered, exactly once.
    const response = client.unmask({ ...base, dropped: ["c04"], survived: ["c00", "c01", "c02", "c03"] });
    expect(response.seedShares.map((s) => s.owner)).toEqual(["c00", "c01", "c02", "c03"]);
    expect(response.secretKeyShares.map((s) => s.owner)).toEqual(["c04"]);
    expect(() =>
      client.unmask({ ...base, dropped: [], survived: ["c00", "c01", "c02", "c03", "c04"] }),
    ).toThrow(withCode(ErrorCode.SECAGG_PROTOCOL));
  });

  it("a client refuses to unmask when fewer than t holders survived", async () => {
    const round = await driveThroughShareKeys(ids(5)); // threshold 4 of 5
    const client = round.clients.get("c00")!;
    client.maskedInput(round.routed.c00, randomVector(10, 1));
    expect(() =>
      client.unmask({ round: 7, recipient: "c00", dropped: ["c03", "c04"], survived: ["c00", "c01", "c02"] }),
    ).toThrow(withCode(ErrorCode.SECAGG_THRESHOLD));
  });

  it("a tampered share ciphertext fails to decrypt", async () => {
    const round = await driveThroughShareKeys(ids(4));
    const message = round.routed.c01;
    const tampered = message.shares[0].ciphertext.slice();
    tampered[5] ^= 1;
    const shares = [{ ...message.shares[0], ciphertext: tampered }, ...message.shares.slice(1)];
    expect(() => round.clients.get("c01")!.maskedInput({ ...message, shares }, randomVector(4, 1))).toThrow(
      withCode(ErrorCode.DECRYPT_FAILED),
    );
  });
});

describe("session binding", () => {
  it("a message for another round is refused by client and server, and changes nothing", async () => {
    const round = await driveThroughShareKeys(ids(4));
    const client = round.clients.get("c02")!;
    expect(() => client.maskedInput({ ...round.routed.c02, round: 8 }, randomVector(4, 1))).toThrow(
      withCode(ErrorCode.STALE_ROUND),
    );
    const reply = client.maskedInput(round.routed.c02, randomVector(4, 1));
    expect(() => round.server.receiveMaskedInput("c02", { ...reply, round: 6 })).toThrow(
      withCode(ErrorCode.STALE_ROUND),
    );
    round.server.receiveMaskedInput("c02", reply);
    expect(round.server.survivors).toEqual(["c02"]);
  });

  it("the server refuses unknown, impersonating, duplicate and out-of-phase senders", async () => {
    const round = await driveThroughShareKeys(ids(4));
    const reply = round.clients.get("c01")!.maskedInput(round.routed.c01, randomVector(4, 1));
    expect(() => round.server.receiveMaskedInput("mallory", reply)).toThrow(
      withCode(ErrorCode.UNKNOWN_CLIENT),
    );
    expect(() => round.server.receiveMaskedInput("c03", reply)).toThrow(withCode(ErrorCode.UNAUTHORIZED));
    round.server.receiveMaskedInput("c01", reply);
    expect(() => round.server.receiveMaskedInput("c01", reply)).toThrow(withCode(ErrorCode.DUPLICATE));
    const late = new SecAggClientSession({ clientId: "c00", round: 7 }).advertiseKeys();
    expect(() => round.server.receiveAdvertiseKeys("c00", late)).toThrow(withCode(ErrorCode.SECAGG_PROTOCOL));
    expect(() => round.server.routeShares()).toThrow(withCode(ErrorCode.SECAGG_PROTOCOL));
  });

  it("a masked input arriving after the unmask requests went out is refused", async () => {
    const round = await driveThroughShareKeys(ids(5), { threshold: 3 });
    const replies = ["c00", "c01", "c02", "c03", "c04"].map((id) =>
      round.clients.get(id)!.maskedInput(round.routed[id], randomVector(4, 2)),
    );
    for (const reply of replies.slice(0, 4)) round.server.receiveMaskedInput(reply.clientId, reply);
    const requests = round.server.unmaskRequests();
    expect(requests.c00.dropped).toEqual(["c04"]);
    expect(() => round.server.receiveMaskedInput("c04", replies[4])).toThrow(
      withCode(ErrorCode.SECAGG_PROTOCOL),
    );
  });

  it("the client checks the round, recipient and order of steps", async () => {
    const client = new SecAggClientSession({ clientId: "a", round: 3 });
    expect(() => client.unmask({ round: 3, recipient: "a", dropped: [], survived: ["a"] })).toThrow(
      withCode(ErrorCode.SECAGG_PROTOCOL),
    );
    client.advertiseKeys();
    const keys = nacl.box.keyPair();
    const other = nacl.box.keyPair();
    const message = {
      round: 3,
      recipient: "a",
      threshold: 2,
      neighbours: [{ clientId: "b", cPublicKey: keys.publicKey, sPublicKey: other.publicKey }],
    };
    await expect(client.shareKeys({ ...message, round: 2 })).rejects.toThrow(withCode(ErrorCode.STALE_ROUND));
    await expect(client.shareKeys({ ...message, recipient: "b" })).rejects.toThrow(
      withCode(ErrorCode.SECAGG_PROTOCOL),
    );
    await expect(client.shareKeys({ ...message, threshold: 3 })).rejects.toThrow(
      withCode(ErrorCode.SECAGG_THRESHOLD),
    );
    const reused = { ...message, neighbours: [{ ...message.neighbours[0], sPublicKey: keys.publicKey }] };
    await expect(client.shareKeys(reused)).rejects.toThrow(/reuses a public key/);
    const reply = await client.shareKeys(message);
    expect(reply.shares.map((s) => s.to)).toEqual(["b"]);
    expect(client.phase).toBe("sharedKeys");
  });
});

describe("secrets end with the session", () => {
  afterEach(() => vi.restoreAllMocks());

  it("key pairs' secret keys are zeroed once the client has unmasked", async () => {
    const made: nacl.BoxKeyPair[] = [];
    const original = nacl.box.keyPair;
    vi.spyOn(nacl.box, "keyPair").mockImplementation(() => {
      const pair = original();
      made.push(pair);
      return pair;
    });
    const inputs = inputsFor(ids(4), 16);
    await runSecAggInMemory(inputs, { graph: "complete" });
    expect(made).toHaveLength(8);
    for (const pair of made) expect(pair.secretKey.every((b) => b === 0)).toBe(true);
  });
});
