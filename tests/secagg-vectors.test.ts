import { randomBytes } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import nacl from "tweetnacl";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import {
  completeGraph,
  dequantizeSum,
  type EncryptedShare,
  SecAggClientSession,
  SecAggServerSession,
  splitSecret,
} from "../common/crypto/secagg/index.js";
import { fromWire } from "../common/wire-json.js";
import * as spec from "./helpers/secagg-spec-reference.js";
import { generateSecAggVectors, hex, SECAGG_VECTORS_PATH } from "./helpers/secagg-vectors.js";

/**
 * docs/secagg-test-vectors.json: the committed file must be what the implementation produces
 * today, a re-implementation written from docs/SECAGG.md alone must reproduce it, and fedsim's
 * real client and server sessions must produce and accept its messages byte for byte.
 */

interface Vectors {
  round: number;
  threshold: number;
  fitSecagg: spec.FitSecAgg;
  clients: {
    clientId: string;
    cSecretKey: string;
    cPublicKey: string;
    sSecretKey: string;
    sPublicKey: string;
    selfMaskSeed: string;
    numExamples: number;
    delta: number[];
    weight: number;
    encoded: number[];
    quantized: number[];
    selfMask: number[];
    masked: number[];
    maskedBytes: string;
  }[];
  pairs: {
    a: string;
    b: string;
    cShared: string;
    shareKey: string;
    sShared: string;
    maskSeed: string;
    mask: number[];
    signA: number;
    signB: number;
  }[];
  shamir: {
    owner: string;
    secret: "selfMaskSeed" | "sSecretKey";
    coefficients: string[];
    shares: { holder: string; x: number; share: string }[];
  }[];
  sealedShares: { from: string; to: string; plaintext: string; nonce: string; ciphertext: string }[];
  prg: { seed: string; words: number[] };
  scenarios: Record<
    "allSurvive" | "oneDrops",
    {
      dropped: string[];
      survivors: string[];
      unmaskRequests: { round: number; recipient: string; dropped: string[]; survived: string[] }[];
      unmaskResponses: {
        round: number;
        clientId: string;
        seedShares: { owner: string; share: string }[];
        secretKeyShares: { owner: string; share: string }[];
      }[];
      sum: number[];
      weightedDeltaSum: number[];
      totalWeight: number;
    }
  >;
  wire: Record<string, unknown> & { clientId: string };
}

const bytes = (h: string): Uint8Array => new Uint8Array(Buffer.from(h, "hex"));
const committed = (): Vectors => JSON.parse(readFileSync(SECAGG_VECTORS_PATH, "utf8")) as Vectors;

let v: Vectors;
beforeAll(async () => {
  if (process.env.FEDSIM_WRITE_SECAGG_VECTORS === "1") {
    const generated = await generateSecAggVectors();
    writeFileSync(SECAGG_VECTORS_PATH, `${JSON.stringify(generated, null, 2)}\n`);
  }
  v = committed();
});

afterEach(() => {
  // Tests below feed tweetnacl fixed "randomness"; give it back the system CSPRNG.
  nacl.setPRNG((x, n) => x.set(randomBytes(n)));
});

describe("the committed SecAgg vectors", () => {
  it("are exactly what the implementation produces", async () => {
    const generated = JSON.parse(JSON.stringify(await generateSecAggVectors()));
    expect(v).toEqual(generated);
  });
});

describe("a client written from docs/SECAGG.md alone (node:crypto + tweetnacl)", () => {
  const client = (id: string) => v.clients.find((c) => c.clientId === id)!;

  it("derives the same public keys, shared secrets, share keys, mask seeds and PRG words", () => {
    for (const c of v.clients) {
      expect(hex(spec.publicKeyOf(bytes(c.cSecretKey)))).toBe(c.cPublicKey);
      expect(hex(spec.publicKeyOf(bytes(c.sSecretKey)))).toBe(c.sPublicKey);
      expect(spec.prg(bytes(c.selfMaskSeed), c.selfMask.length)).toEqual(c.selfMask);
    }
    for (const p of v.pairs) {
      const [a, b] = [client(p.a), client(p.b)];
      expect(hex(spec.x25519(bytes(a.cSecretKey), bytes(b.cPublicKey)))).toBe(p.cShared);
      expect(hex(spec.x25519(bytes(b.sSecretKey), bytes(a.sPublicKey)))).toBe(p.sShared);
      expect(hex(spec.shareKey(bytes(b.cSecretKey), bytes(a.cPublicKey)))).toBe(p.shareKey);
      expect(hex(spec.maskSeed(bytes(a.sSecretKey), bytes(b.sPublicKey)))).toBe(p.maskSeed);
      expect(spec.prg(bytes(p.maskSeed), p.mask.length)).toEqual(p.mask);
      expect([spec.sign(p.a, p.b), spec.sign(p.b, p.a)]).toEqual([p.signA, p.signB]);
    }
    expect(spec.prg(bytes(v.prg.seed), v.prg.words.length)).toEqual(v.prg.words);
  });

  it("quantises, masks and lays out each update the same way", () => {
    for (const c of v.clients) {
      const { encoded, words } = spec.quantizeUpdate(c.delta, c.numExamples, v.fitSecagg);
      expect(encoded).toEqual(c.encoded);
      expect(words).toEqual(c.quantized);
      const pairwise = v.clients
        .filter((o) => o.clientId !== c.clientId)
        .map((o) => ({
          seed: spec.maskSeed(bytes(c.sSecretKey), bytes(o.sPublicKey)),
          sign: spec.sign(c.clientId, o.clientId),
        }));
      const masked = spec.maskVector(words, bytes(c.selfMaskSeed), pairwise);
      expect(masked).toEqual(c.masked);
      expect(hex(spec.wordsToBytes(masked))).toBe(c.maskedBytes);
    }
  });

  it("splits, seals and rebuilds the Shamir shares the same way", () => {
    for (const s of v.shamir) {
      const secret = bytes(client(s.owner)[s.secret]);
      const coefficients = s.coefficients.map(bytes);
      for (const { x, share } of s.shares) expect(hex(spec.shareAt(secret, coefficients, x))).toBe(share);
      for (let k = 0; k + v.threshold <= s.shares.length; k++) {
        const subset = s.shares.slice(k, k + v.threshold).map((sh) => bytes(sh.share));
        expect(hex(spec.combine(subset))).toBe(hex(secret));
      }
    }
    const shareFor = (owner: string, kind: string, holder: string) =>
      bytes(
        v.shamir.find((s) => s.owner === owner && s.secret === kind)!.shares.find((h) => h.holder === holder)!
          .share,
      );
    for (const sealed of v.sealedShares) {
      const plaintext = spec.sharePlaintext(
        v.round,
        sealed.from,
        sealed.to,
        shareFor(sealed.from, "sSecretKey", sealed.to),
        shareFor(sealed.from, "selfMaskSeed", sealed.to),
      );
      expect(hex(plaintext)).toBe(sealed.plaintext);
      const key = spec.shareKey(bytes(client(sealed.from).cSecretKey), bytes(client(sealed.to).cPublicKey));
      expect(hex(spec.seal(plaintext, bytes(sealed.nonce), key))).toBe(sealed.ciphertext);
    }
  });

  it("sums to what the coordinator unmasks, and encodes stage messages as the wire example shows", () => {
    for (const scenario of Object.values(v.scenarios)) {
      const sum = scenario.survivors
        .map((id) => client(id).masked)
        .reduce((acc, m) => acc.map((w, i) => (w + m[i]) % 2 ** 32));
      // The masked sum minus every survivor's PRG(b) and the masks shared with dropped clients.
      const unmasked = sum.map((w, i) => {
        let x = w;
        for (const id of scenario.survivors) x -= spec.prg(bytes(client(id).selfMaskSeed), sum.length)[i];
        for (const d of scenario.dropped) {
          for (const id of scenario.survivors) {
            const seed = spec.maskSeed(bytes(client(d).sSecretKey), bytes(client(id).sPublicKey));
            x -= spec.sign(id, d) * spec.prg(seed, sum.length)[i];
          }
        }
        return ((x % 2 ** 32) + 2 ** 32) % 2 ** 32;
      });
      expect(unmasked).toEqual(scenario.sum);
    }
    const a = client(v.wire.clientId);
    expect(v.wire.advertise).toEqual({
      payload: { round: v.round },
      ack: {
        ok: true,
        message: {
          round: v.round,
          clientId: a.clientId,
          cPublicKey: spec.b64(bytes(a.cPublicKey)),
          sPublicKey: spec.b64(bytes(a.sPublicKey)),
        },
      },
    });
  });
});

describe("fedsim's own SecAgg sessions on the vectors", () => {
  /** Makes tweetnacl hand out exactly these byte strings, in order, and nothing else. */
  function feedRandomness(queue: Uint8Array[]): void {
    nacl.setPRNG((x, n) => {
      const next = queue.shift();
      if (!next || next.length !== n) throw new Error(`unexpected draw of ${n} random bytes`);
      x.set(next);
    });
  }
  const sealedFrom = (from: string, to: string): EncryptedShare => {
    const s = v.sealedShares.find((x) => x.from === from && x.to === to)!;
    return { from, to, nonce: bytes(s.nonce), ciphertext: bytes(s.ciphertext) };
  };
  const publicKeys = (c: Vectors["clients"][number]) => ({
    clientId: c.clientId,
    cPublicKey: bytes(c.cPublicKey),
    sPublicKey: bytes(c.sPublicKey),
  });

  it("a client session given the vectors' keys, seed and nonces sends the vectors' keys and masked vector", async () => {
    const request = v.scenarios.allSurvive.unmaskRequests;
    const response = v.scenarios.allSurvive.unmaskResponses;
    for (const c of v.clients) {
      const others = v.clients.filter((o) => o.clientId !== c.clientId);
      const session = new SecAggClientSession({ clientId: c.clientId, round: v.round });
      feedRandomness([bytes(c.cSecretKey), bytes(c.sSecretKey)]);
      const advertised = session.advertiseKeys();
      expect([hex(advertised.cPublicKey), hex(advertised.sPublicKey)]).toEqual([c.cPublicKey, c.sPublicKey]);

      const nonces = others.map(
        (o) => v.sealedShares.find((s) => s.from === c.clientId && s.to === o.clientId)!,
      );
      feedRandomness([bytes(c.selfMaskSeed), ...nonces.map((s) => bytes(s.nonce))]);
      const shared = await session.shareKeys({
        round: v.round,
        recipient: c.clientId,
        threshold: v.threshold,
        neighbours: others.map(publicKeys),
      });
      // The shares inside are the package's random ones: open them as the recipient would, and
      // check the header and that they rebuild this client's b and s_sk.
      const opened = shared.shares.map((s, k) => {
        expect(hex(s.nonce)).toBe(nonces[k].nonce);
        const key = spec.shareKey(bytes(others[k].cSecretKey), bytes(c.cPublicKey));
        const plain = Buffer.from(nacl.secretbox.open(s.ciphertext, s.nonce, key)!);
        const from = Buffer.from(c.clientId);
        const to = Buffer.from(others[k].clientId);
        expect(plain.readUInt32LE(0)).toBe(v.round);
        expect(plain.subarray(4, 6 + from.length)).toEqual(
          Buffer.concat([Buffer.from([from.length, 0]), from]),
        );
        const rest = plain.subarray(6 + from.length + 2 + to.length);
        expect(rest.length).toBe(2 * (2 + 33));
        return { key: new Uint8Array(rest.subarray(2, 35)), seed: new Uint8Array(rest.subarray(37, 70)) };
      });
      expect(hex(spec.combine(opened.map((o) => o.seed)))).toBe(c.selfMaskSeed);
      expect(hex(spec.combine(opened.map((o) => o.key)))).toBe(c.sSecretKey);

      const routed = {
        round: v.round,
        recipient: c.clientId,
        shares: others.map((o) => sealedFrom(o.clientId, c.clientId)),
      };
      const masked = session.maskedInput(routed, Uint32Array.from(c.quantized));
      expect(hex(masked.masked)).toBe(c.maskedBytes);

      const mine = request.find((r) => r.recipient === c.clientId)!;
      const revealed = session.unmask(mine);
      const expected = response.find((r) => r.clientId === c.clientId)!;
      // Its own seed share is the package's random one; those its neighbours sent are the vectors'.
      const fromOthers = revealed.seedShares
        .filter((s) => s.owner !== c.clientId)
        .map((s) => ({ owner: s.owner, share: hex(s.share) }));
      expect(fromOthers).toEqual(expected.seedShares.filter((s) => s.owner !== c.clientId));
    }
  });

  for (const name of ["allSurvive", "oneDrops"] as const) {
    it(`a server session fed the vectors' messages (${name}) routes them as the wire example shows and unmasks the sum`, async () => {
      const scenario = v.scenarios[name];
      const ids = v.clients.map((c) => c.clientId);
      const server = new SecAggServerSession({
        round: v.round,
        clientIds: ids,
        graph: completeGraph(ids),
        threshold: v.threshold,
      });
      for (const c of v.clients)
        server.receiveAdvertiseKeys(c.clientId, { round: v.round, ...publicKeys(c) });
      const neighbourKeys = server.neighbourKeys();
      expect(neighbourKeys[v.wire.clientId]).toEqual(
        fromWire((v.wire.share as { payload: unknown }).payload),
      );
      for (const c of v.clients) {
        const shares = ids.filter((id) => id !== c.clientId).map((to) => sealedFrom(c.clientId, to));
        server.receiveShareKeys(c.clientId, { round: v.round, clientId: c.clientId, shares });
      }
      const routed = server.routeShares();
      expect(routed[v.wire.clientId]).toEqual(fromWire((v.wire.routed as { payload: unknown }).payload));
      for (const id of scenario.survivors) {
        const c = v.clients.find((x) => x.clientId === id)!;
        server.receiveMaskedInput(id, { round: v.round, clientId: id, masked: bytes(c.maskedBytes) });
      }
      expect(Object.values(server.unmaskRequests())).toEqual(scenario.unmaskRequests);
      for (const r of scenario.unmaskResponses) {
        const reveal = (list: { owner: string; share: string }[]) =>
          list.map((s) => ({ owner: s.owner, share: bytes(s.share) }));
        server.receiveUnmaskResponse(r.clientId, {
          round: r.round,
          clientId: r.clientId,
          seedShares: reveal(r.seedShares),
          secretKeyShares: reveal(r.secretKeyShares),
        });
      }
      const sum = await server.unmask();
      expect(Array.from(sum)).toEqual(scenario.sum);
      const values = Array.from(dequantizeSum(sum, v.fitSecagg.scale));
      expect(values).toEqual([...scenario.weightedDeltaSum, scenario.totalWeight]);
    });
  }

  it("shares made by the Shamir package rebuild under the spec's interpolation", async () => {
    const secret = bytes(v.clients[0].selfMaskSeed);
    const shares = await splitSecret(secret, 5, 3);
    for (const share of shares) expect(share.length).toBe(33);
    expect(new Set(shares.map((s) => s[32])).size).toBe(5);
    expect(hex(spec.combine(shares.slice(0, 3)))).toBe(hex(secret));
    expect(hex(spec.combine(shares.slice(2)))).toBe(hex(secret));
  });
});
