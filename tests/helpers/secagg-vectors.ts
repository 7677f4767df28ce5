import { createHash } from "node:crypto";
import { fileURLToPath } from "node:url";
import nacl from "tweetnacl";
import {
  addMaskInPlace,
  combineShares,
  completeGraph,
  encodeWeightedVector,
  expandMask,
  maskSign,
  pairwiseMaskSeed,
  shareEncryptionKey,
  vectorToBytes,
  x25519,
} from "../../common/crypto/secagg/index.js";
import { encodeSharePlaintext } from "../../common/crypto/secagg/messages.js";
import type { FitInstructions } from "../../common/protocol.js";
import { toWire } from "../../common/wire-json.js";

/**
 * SecAgg test vectors (docs/secagg-test-vectors.json, described in docs/SECAGG.md): fixed keys,
 * seeds, nonces and updates for three clients, run through fedsim's own primitives. The committed
 * file must equal what this returns (tests/secagg-vectors.test.ts), so the vectors cannot drift
 * from the code.
 *
 * One part cannot come from the implementation: the `shamir-secret-sharing` package draws its
 * x-coordinates and coefficients itself and cannot be seeded. The shares here are evaluated from
 * fixed coefficients by the rule the package follows (GF(2^8) with x^8+x^4+x^3+x+1, y-bytes then
 * x), and the generator checks that the package's combine rebuilds each secret from them.
 */

export const SECAGG_VECTORS_PATH = fileURLToPath(
  new URL("../../docs/secagg-test-vectors.json", import.meta.url),
);

const ROUND = 7;
const THRESHOLD = 2;
const IDS = ["c-1111111111111111", "c-2222222222222222", "c-3333333333333333"];
/** The `secagg` field of the fit request these vectors assume. */
const FIT_SECAGG: NonNullable<FitInstructions["secagg"]> = {
  clipRange: 1,
  scale: 2 ** 22,
  weighted: true,
  maxWeight: 100,
};
// Chosen to hit the quantiser's edges: clamping, the weight cap, ties (±0.5, ±1.5 steps), zero.
const TIE = 2 ** -23;
const UPDATES: { numExamples: number; delta: number[] }[] = [
  { numExamples: 1, delta: [TIE, -TIE, 3 * TIE, -3 * TIE, 1.5, 0.1] },
  { numExamples: 250, delta: [-1.25, 0.1, 0.001, -0.5, 0, 1e-9] },
  { numExamples: 7, delta: [0.3, -0.7, 0.25, 1, -1, 0.123456] },
];
/** The stand-alone PRG vector spans three ChaCha20 blocks. */
const PRG_WORDS = 40;

/** 1..32 bytes that depend only on the label: the vectors' fixed "randomness". */
export function fixedBytes(label: string, length: number): Uint8Array {
  return new Uint8Array(createHash("sha256").update(`fedsim secagg test vector: ${label}`).digest()).slice(
    0,
    length,
  );
}

export const hex = (bytes: Uint8Array): string => Buffer.from(bytes).toString("hex");

/** GF(2^8) multiplication modulo x^8 + x^4 + x^3 + x + 1 (0x11b), shift-and-add. */
function gfMul(a: number, b: number): number {
  let product = 0;
  for (let x = a, y = b; y > 0; y >>= 1) {
    if (y & 1) product ^= x;
    x <<= 1;
    if (x & 0x100) x ^= 0x11b;
  }
  return product;
}

/** Distinct non-zero x-coordinates, taken from fixed bytes in order. */
function xCoordinates(label: string, count: number): number[] {
  const xs: number[] = [];
  for (const byte of fixedBytes(label, 32))
    if (byte !== 0 && !xs.includes(byte) && xs.length < count) xs.push(byte);
  return xs;
}

/** Shamir shares of `secret` with f(0) = secret byte and the given higher coefficients (one array per degree). */
function shamirShares(secret: Uint8Array, coefficients: Uint8Array[], xs: number[]): Uint8Array[] {
  return xs.map((x) => {
    const share = new Uint8Array(secret.length + 1);
    for (let i = 0; i < secret.length; i++) {
      let y = 0;
      for (let degree = coefficients.length; degree >= 1; degree--)
        y = gfMul(y, x) ^ coefficients[degree - 1][i];
      share[i] = gfMul(y, x) ^ secret[i];
    }
    share[secret.length] = x;
    return share;
  });
}

const words = (vector: Uint32Array): number[] => Array.from(vector);

export async function generateSecAggVectors(): Promise<Record<string, unknown>> {
  const graph = completeGraph(IDS);
  const length = UPDATES[0].delta.length + 1;
  const clients = IDS.map((clientId, index) => {
    const cSecretKey = fixedBytes(`${clientId} c secret key`, 32);
    const sSecretKey = fixedBytes(`${clientId} s secret key`, 32);
    const selfMaskSeed = fixedBytes(`${clientId} self-mask seed b`, 32);
    const { numExamples, delta } = UPDATES[index];
    const delta32 = Float32Array.from(delta);
    const quantized = encodeWeightedVector(delta32, numExamples, FIT_SECAGG);
    // What encodeWeightedVector quantises, spelled out for readers of the vectors.
    const weight = FIT_SECAGG.weighted ? Math.min(numExamples, FIT_SECAGG.maxWeight) : 1;
    const clip = FIT_SECAGG.clipRange;
    const encoded = Float32Array.from([...delta32].map((v) => weight * Math.min(clip, Math.max(-clip, v))));
    const withWeight = Float32Array.from([...encoded, weight]);
    return {
      clientId,
      cSecretKey,
      cPublicKey: nacl.box.keyPair.fromSecretKey(cSecretKey).publicKey,
      sSecretKey,
      sPublicKey: nacl.box.keyPair.fromSecretKey(sSecretKey).publicKey,
      selfMaskSeed,
      numExamples,
      delta32,
      weight,
      encoded: withWeight,
      quantized,
    };
  });
  const byId = new Map(clients.map((c) => [c.clientId, c]));

  const pairs = [];
  const pairSecrets = new Map<string, { shareKey: Uint8Array; maskSeed: Uint8Array }>();
  for (const [i, a] of clients.entries()) {
    for (const b of clients.slice(i + 1)) {
      const shareKey = shareEncryptionKey(a.cSecretKey, b.cPublicKey);
      const maskSeed = pairwiseMaskSeed(a.sSecretKey, b.sPublicKey);
      if (hex(shareKey) !== hex(shareEncryptionKey(b.cSecretKey, a.cPublicKey)))
        throw new Error("share key is not symmetric");
      if (hex(maskSeed) !== hex(pairwiseMaskSeed(b.sSecretKey, a.sPublicKey)))
        throw new Error("mask seed is not symmetric");
      pairSecrets.set(`${a.clientId} ${b.clientId}`, { shareKey, maskSeed });
      pairSecrets.set(`${b.clientId} ${a.clientId}`, { shareKey, maskSeed });
      pairs.push({
        a: a.clientId,
        b: b.clientId,
        cShared: hex(x25519(a.cSecretKey, b.cPublicKey)),
        shareKey: hex(shareKey),
        sShared: hex(x25519(a.sSecretKey, b.sPublicKey)),
        maskSeed: hex(maskSeed),
        mask: words(expandMask(maskSeed, length)),
        signA: maskSign(a.clientId, b.clientId),
        signB: maskSign(b.clientId, a.clientId),
      });
    }
  }

  // Shamir: each owner's holders are itself then its neighbours in id order (the reference
  // client's assignment; any distinct x-coordinates would do).
  const shamir = [];
  const shareOf = new Map<string, Uint8Array>(); // `${owner} ${kind} ${holder}`
  for (const owner of clients) {
    const holders = [owner.clientId, ...graph[owner.clientId]];
    for (const kind of ["selfMaskSeed", "sSecretKey"] as const) {
      const secret = owner[kind];
      const coefficients = Array.from({ length: THRESHOLD - 1 }, (_, d) =>
        fixedBytes(`${owner.clientId} ${kind} coefficient ${d + 1}`, 32),
      );
      const xs = xCoordinates(`${owner.clientId} ${kind} x`, holders.length);
      const shares = shamirShares(secret, coefficients, xs);
      for (let k = 0; k + 1 < shares.length; k++) {
        const rebuilt = await combineShares([shares[k], shares[k + 1]]);
        if (hex(rebuilt) !== hex(secret))
          throw new Error(`shares of ${owner.clientId} ${kind} do not combine`);
      }
      holders.forEach((holder, h) => {
        shareOf.set(`${owner.clientId} ${kind} ${holder}`, shares[h]);
      });
      shamir.push({
        owner: owner.clientId,
        secret: kind,
        coefficients: coefficients.map(hex),
        shares: holders.map((holder, h) => ({ holder, x: xs[h], share: hex(shares[h]) })),
      });
    }
  }

  const sealed = new Map<string, { from: string; to: string; nonce: Uint8Array; ciphertext: Uint8Array }>();
  const sealedShares = [];
  for (const from of clients) {
    for (const to of graph[from.clientId]) {
      const plaintext = encodeSharePlaintext({
        round: ROUND,
        from: from.clientId,
        to,
        secretKeyShare: shareOf.get(`${from.clientId} sSecretKey ${to}`)!,
        seedShare: shareOf.get(`${from.clientId} selfMaskSeed ${to}`)!,
      });
      const nonce = fixedBytes(`${from.clientId} to ${to} nonce`, 24);
      const ciphertext = nacl.secretbox(
        plaintext,
        nonce,
        pairSecrets.get(`${from.clientId} ${to}`)!.shareKey,
      );
      sealed.set(`${from.clientId} ${to}`, { from: from.clientId, to, nonce, ciphertext });
      sealedShares.push({
        from: from.clientId,
        to,
        plaintext: hex(plaintext),
        nonce: hex(nonce),
        ciphertext: hex(ciphertext),
      });
    }
  }

  const masked = new Map<string, Uint32Array>();
  for (const client of clients) {
    const y = new Uint32Array(client.quantized);
    addMaskInPlace(y, client.selfMaskSeed, 1);
    for (const other of graph[client.clientId]) {
      addMaskInPlace(
        y,
        pairSecrets.get(`${client.clientId} ${other}`)!.maskSeed,
        maskSign(client.clientId, other),
      );
    }
    masked.set(client.clientId, y);
  }

  const scenario = (dropped: string[]) => {
    const survivors = IDS.filter((id) => !dropped.includes(id));
    const sum = new Uint32Array(length);
    for (const id of survivors) for (let i = 0; i < length; i++) sum[i] += byId.get(id)!.quantized[i];
    const requests = survivors.map((id) => {
      const group = [id, ...graph[id]].sort();
      return {
        round: ROUND,
        recipient: id,
        dropped: group.filter((g) => dropped.includes(g)),
        survived: group.filter((g) => !dropped.includes(g)),
      };
    });
    const responses = requests.map((r) => ({
      round: ROUND,
      clientId: r.recipient,
      seedShares: r.survived.map((owner) => ({
        owner,
        share: hex(shareOf.get(`${owner} selfMaskSeed ${r.recipient}`)!),
      })),
      secretKeyShares: r.dropped.map((owner) => ({
        owner,
        share: hex(shareOf.get(`${owner} sSecretKey ${r.recipient}`)!),
      })),
    }));
    const scale = FIT_SECAGG.scale;
    return {
      dropped,
      survivors,
      unmaskRequests: requests,
      unmaskResponses: responses,
      sum: words(sum),
      weightedDeltaSum: Array.from(sum.subarray(0, length - 1), (w) => Math.fround((w | 0) / scale)),
      totalWeight: Math.fround((sum[length - 1] | 0) / scale),
    };
  };

  // One client's side of the wire, exactly as the Socket.IO `secagg` event carries it.
  const first = clients[0];
  const neighbours = graph[first.clientId].map((id) => {
    const c = byId.get(id)!;
    return { clientId: id, cPublicKey: c.cPublicKey, sPublicKey: c.sPublicKey };
  });
  const wire = {
    clientId: first.clientId,
    advertise: {
      payload: toWire({ round: ROUND }),
      ack: toWire({
        ok: true,
        message: {
          round: ROUND,
          clientId: first.clientId,
          cPublicKey: first.cPublicKey,
          sPublicKey: first.sPublicKey,
        },
      }),
    },
    share: {
      payload: toWire({ round: ROUND, recipient: first.clientId, threshold: THRESHOLD, neighbours }),
      ack: toWire({
        ok: true,
        message: {
          round: ROUND,
          clientId: first.clientId,
          shares: graph[first.clientId].map((to) => sealed.get(`${first.clientId} ${to}`)!),
        },
      }),
    },
    routed: {
      payload: toWire({
        round: ROUND,
        recipient: first.clientId,
        shares: graph[first.clientId].map((from) => sealed.get(`${from} ${first.clientId}`)!),
      }),
      ack: toWire({ ok: true, message: {} }),
    },
    fitResultSecaggMasked: {
      round: ROUND,
      clientId: first.clientId,
      masked: hex(vectorToBytes(masked.get(first.clientId)!)),
    },
  };

  return {
    about:
      "SecAgg test vectors for fedsim, described in docs/SECAGG.md (section 'Test vectors'). Bytes are lowercase hex; vectors of uint32 are JSON numbers (4 bytes little-endian each on the wire); floats are float32 values.",
    regenerate:
      "FEDSIM_WRITE_SECAGG_VECTORS=1 npx vitest run tests/secagg-vectors.test.ts && npx biome format --write docs/secagg-test-vectors.json",
    round: ROUND,
    graph: "complete",
    threshold: THRESHOLD,
    fitSecagg: FIT_SECAGG,
    clients: clients.map((c) => ({
      clientId: c.clientId,
      cSecretKey: hex(c.cSecretKey),
      cPublicKey: hex(c.cPublicKey),
      sSecretKey: hex(c.sSecretKey),
      sPublicKey: hex(c.sPublicKey),
      selfMaskSeed: hex(c.selfMaskSeed),
      numExamples: c.numExamples,
      delta: Array.from(c.delta32),
      weight: c.weight,
      encoded: Array.from(c.encoded),
      quantized: words(c.quantized),
      selfMask: words(expandMask(c.selfMaskSeed, length)),
      masked: words(masked.get(c.clientId)!),
      maskedBytes: hex(vectorToBytes(masked.get(c.clientId)!)),
    })),
    pairs,
    shamir,
    sealedShares,
    prg: (() => {
      const seed = fixedBytes("prg seed", 32);
      return { seed: hex(seed), words: words(expandMask(seed, PRG_WORDS)) };
    })(),
    scenarios: { allSurvive: scenario([]), oneDrops: scenario([IDS[2]]) },
    wire,
  };
}
