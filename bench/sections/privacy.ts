import { createCipheriv, createDecipheriv, randomBytes } from "node:crypto";
import {
  createRoundKeyPair,
  type Envelope,
  EnvelopeOpener,
  sealUpdate,
} from "../../common/crypto/envelope.js";
import { envelopeWorkerCount } from "../../common/crypto/envelope-pool.js";
import { generateIdentity } from "../../common/crypto/identity.js";
import { measurePrivacyRound } from "../privacy-rounds.js";
import { errorMessage, interleavedMedians, medianSeconds, sig } from "../timing.js";

/**
 * What privacy costs one client per round, against Node's built-in chacha20-poly1305 (OpenSSL,
 * near memory speed) over the same bytes:
 * - the update envelope: sealUpdate (key agreement, secretbox of every chunk on worker threads,
 *   digest, ed25519 signature) plus EnvelopeOpener.open (chunk hashes, verify, secretbox.open of
 *   every chunk on worker threads), against chacha20-poly1305 encrypt + decrypt on one thread;
 * - SecAgg masking: quantise, then add the self mask and one pairwise mask per neighbour, against
 *   one chacha20-poly1305 encryption of the update's bytes, and against the bare ChaCha20
 *   keystream of all those masks (secaggVsKeystream).
 * Every ratio is a time ratio, ours ÷ reference: 1 = as fast as chacha20-poly1305, 10 = ten times slower.
 * The envelope has fixed costs per message (a fresh X25519 key pair, an ed25519 signature and its
 * verification, ~10-20 ms in all), so its ratio is much higher for small updates.
 */
export interface PrivacyRow {
  floats: number;
  megabytes: number;
  sealSeconds: number;
  openSeconds: number;
  /** chacha20-poly1305 encrypt + decrypt of the same plaintext bytes. */
  chachaSeconds: number;
  chachaEncryptSeconds: number;
  /** (sealSeconds + openSeconds) ÷ chachaSeconds. */
  envelopeRatio: number | null;
  /** Quantise + self mask + one mask per neighbour, for one client. */
  secaggMaskSeconds: number | null;
  /** secaggMaskSeconds ÷ chachaEncryptSeconds (one pass over the update's bytes). */
  secaggRatio: number | null;
  /**
   * secaggMaskSeconds ÷ (masks × chachaEncryptSeconds): against expanding every mask's keystream
   * with OpenSSL and nothing else, i.e. the overhead above the unavoidable keystream work.
   */
  secaggPerMaskRatio: number | null;
  /** OpenSSL's ChaCha20 keystream for every mask (self + neighbours) over the update, nothing else. */
  keystreamSeconds: number | null;
  /** secaggMaskSeconds ÷ keystreamSeconds: the client's masking against its bare keystream cost. */
  secaggVsKeystream: number | null;
}

/**
 * One whole aggregation round without training, every party in this process (bench/privacy-rounds.ts):
 * seconds are the sum of all clients' and the server's work, plain against with privacy.
 */
export interface PrivacyPerRound {
  clients: number;
  model: string;
  params: number;
  /** float32 encoding per client; validation and FedAvg weightedMean on the server. */
  plainSeconds: number;
  /** Plus encodePlainUpdate + sealUpdate per client and EnvelopeOpener.open + decode on the server. */
  envelopeSeconds: number;
  /** Quantisation and the four SecAgg stages (complete graph), then dequantisation. */
  secaggSeconds: number;
  /** envelopeSeconds ÷ plainSeconds. */
  envelopeRatio: number;
  /** secaggSeconds ÷ plainSeconds. */
  secaggRatio: number;
  repeats: number;
}

export interface PrivacySection {
  rows: PrivacyRow[];
  /** Envelope ratio at the largest size (the FedAvg CNN), the headline figure. */
  envelopeRatio: number | null;
  /**
   * Target figure (≤ 10): (sealUpdate + EnvelopeOpener.open) ÷ (chacha20-poly1305 encrypt +
   * decrypt) for the FedAvg CNN's 6.65 MB update; the same number as envelopeRatio, named for the
   * targets table. Seal and open spread the chunks over `envelopeWorkers` threads; OpenSSL runs on one.
   */
  envelopeVsChacha: number | null;
  /** Worker threads that sealed and opened envelope chunks. */
  envelopeWorkers: number;
  /** All of one client's SecAgg masking ÷ one chacha20-poly1305 encryption, at the largest size. */
  secaggRatio: number | null;
  /**
   * The same per keystream byte: masking ÷ (masks × one encryption), at the largest size. The
   * masks expand masks × the update's bytes of keystream, so this compares like with like; the
   * ≤ 3× target applies to it.
   */
  secaggPerMaskRatio: number | null;
  /**
   * Target figure (≤ 2): one client's quantise + all masks ÷ the bare ChaCha20 keystream those
   * masks need (OpenSSL, the same 64 KiB steps as the PRG), at the largest size.
   */
  secaggVsKeystream: number | null;
  /** A 10-client round of the CNN with and without privacy; null when it could not be measured. */
  perRound: PrivacyPerRound | null;
  perRoundNote?: string;
  secaggNeighbours: number;
  /** One client's X25519 agreements with its neighbours (seconds), done once per round before masking. */
  secaggKeyAgreementSeconds: number | null;
  secaggNote?: string;
  repeats: number;
}

const SIZES = [200_000, 1_663_370];
const NEIGHBOURS = 10;

function updateBytes(floats: number): { values: Float32Array; bytes: Uint8Array } {
  const values = new Float32Array(floats);
  for (let i = 0; i < floats; i++) values[i] = Math.sin(i) * 1e-2;
  return { values, bytes: new Uint8Array(values.buffer) };
}

function chachaEncrypt(
  key: Buffer,
  nonce: Buffer,
  plaintext: Uint8Array,
): { ciphertext: Buffer; tag: Buffer } {
  const cipher = createCipheriv("chacha20-poly1305", key, nonce, { authTagLength: 16 });
  const ciphertext = Buffer.concat([cipher.update(plaintext), cipher.final()]);
  return { ciphertext, tag: cipher.getAuthTag() };
}

function chachaDecrypt(key: Buffer, nonce: Buffer, sealed: { ciphertext: Buffer; tag: Buffer }): Buffer {
  const decipher = createDecipheriv("chacha20-poly1305", key, nonce, { authTagLength: 16 });
  decipher.setAuthTag(sealed.tag);
  return Buffer.concat([decipher.update(sealed.ciphertext), decipher.final()]);
}

type SecAggModules = {
  prg: typeof import("../../common/crypto/secagg/prg.js");
  quantize: typeof import("../../common/crypto/secagg/quantize.js");
  pairwise: typeof import("../../common/crypto/secagg/pairwise.js");
};

/** SecAgg is optional here: if its modules fail to load the section still reports the envelope. */
async function loadSecAgg(): Promise<SecAggModules | string> {
  try {
    return {
      prg: await import("../../common/crypto/secagg/prg.js"),
      quantize: await import("../../common/crypto/secagg/quantize.js"),
      pairwise: await import("../../common/crypto/secagg/pairwise.js"),
    };
  } catch (err) {
    return `SecAgg modules did not load: ${errorMessage(err)}`;
  }
}

/** What a SecAgg client does to its update: quantise, then add its self mask and every pairwise mask. */
function maskOneClient(secagg: SecAggModules, values: Float32Array, seeds: Uint8Array[]): Uint32Array {
  const clipRange = 1;
  const scale = secagg.quantize.chooseScale(clipRange, 100);
  const masked = secagg.quantize.quantize(values, { clipRange, scale });
  secagg.prg.addMasksInPlace(
    masked,
    seeds.map((seed, k) => ({ seed, sign: k % 2 === 0 ? 1 : -1 })),
  );
  return masked;
}

const KEYSTREAM_STEP_BYTES = 65_536;
const ZERO_STEP = Buffer.alloc(KEYSTREAM_STEP_BYTES);

/** The floor under masking: OpenSSL's ChaCha20 keystream for every seed over the update's bytes. */
function keystreamOnly(seeds: Uint8Array[], bytes: number): void {
  const iv = Buffer.alloc(16);
  for (const seed of seeds) {
    const cipher = createCipheriv("chacha20", seed, iv);
    for (let done = 0; done < bytes; done += KEYSTREAM_STEP_BYTES) {
      cipher.update(ZERO_STEP.subarray(0, Math.min(KEYSTREAM_STEP_BYTES, bytes - done)));
    }
    cipher.final();
  }
}

async function timeKeyAgreement(secagg: SecAggModules, repeats: number): Promise<number> {
  const own = randomBytes(32);
  const peers = Array.from({ length: NEIGHBOURS }, () => {
    const secret = randomBytes(32);
    // Derive a valid public key through the same code path: agreement with the base point 9.
    const basePoint = new Uint8Array(32);
    basePoint[0] = 9;
    return secagg.pairwise.x25519(secret, basePoint);
  });
  return medianSeconds(
    () => {
      const agreement = secagg.pairwise.x25519Agreement(own);
      for (const peer of peers) secagg.pairwise.pairwiseMaskSeed(agreement, peer);
    },
    { repeats },
  );
}

export async function runPrivacy(options: {
  quick: boolean;
  log: (line: string) => void;
}): Promise<PrivacySection> {
  const repeats = options.quick ? 3 : 7;
  const secagg = await loadSecAgg();
  const identity = generateIdentity();
  const rows: PrivacyRow[] = [];
  let round = 0;
  for (const floats of SIZES) {
    options.log(`privacy: ${floats} floats…`);
    const { values, bytes } = updateBytes(floats);
    const roundKeys = createRoundKeyPair();
    const opener = new EnvelopeOpener({ round, secretKey: roundKeys.secretKey });
    const seal = () =>
      sealUpdate({ round, serverPublicKey: roundKeys.publicKey, identity, plaintext: bytes });
    // Each open needs a fresh envelope (replays are refused), so they are sealed before timing.
    const envelopes: Envelope[] = [];
    for (let i = 0; i <= repeats; i++) envelopes.push(await seal());
    let nextEnvelope = 0;
    const key = randomBytes(32);
    const nonce = randomBytes(12);
    const sealed = chachaEncrypt(key, nonce, bytes);
    const seeds = Array.from({ length: NEIGHBOURS + 1 }, () => new Uint8Array(randomBytes(32)));
    const noop = () => undefined;
    const t = await interleavedMedians(
      {
        seal,
        open: () => opener.open(envelopes[nextEnvelope++], identity.publicKey),
        chachaEncrypt: () => chachaEncrypt(key, nonce, bytes),
        chachaDecrypt: () => chachaDecrypt(key, nonce, sealed),
        mask: typeof secagg === "string" ? noop : () => maskOneClient(secagg, values, seeds),
        keystream: () => keystreamOnly(seeds, bytes.byteLength),
      },
      repeats,
    );
    opener.close();
    const sealSeconds = t.seal;
    const openSeconds = t.open;
    const chachaEncryptSeconds = t.chachaEncrypt;
    const chachaSeconds = t.chachaEncrypt + t.chachaDecrypt;
    const secaggMaskSeconds = typeof secagg === "string" ? null : t.mask;
    rows.push({
      floats,
      megabytes: sig(bytes.byteLength / 1e6) ?? 0,
      sealSeconds: sig(sealSeconds) ?? 0,
      openSeconds: sig(openSeconds) ?? 0,
      chachaSeconds: sig(chachaSeconds) ?? 0,
      chachaEncryptSeconds: sig(chachaEncryptSeconds) ?? 0,
      envelopeRatio: sig((sealSeconds + openSeconds) / chachaSeconds, 3),
      secaggMaskSeconds: sig(secaggMaskSeconds),
      secaggRatio: secaggMaskSeconds === null ? null : sig(secaggMaskSeconds / chachaEncryptSeconds, 3),
      secaggPerMaskRatio:
        secaggMaskSeconds === null
          ? null
          : sig(secaggMaskSeconds / ((NEIGHBOURS + 1) * chachaEncryptSeconds), 3),
      keystreamSeconds: sig(t.keystream),
      secaggVsKeystream: secaggMaskSeconds === null ? null : sig(secaggMaskSeconds / t.keystream, 3),
    });
    round++;
  }
  const largest = rows[rows.length - 1];
  let perRound: PrivacyPerRound | null = null;
  let perRoundNote: string | undefined;
  try {
    options.log("privacy: a 10-client CNN round, plain, envelope and SecAgg…");
    const c = await measurePrivacyRound("mnist-cnn", 10);
    perRound = {
      clients: c.clients,
      model: c.model,
      params: c.params,
      plainSeconds: c.plainRoundSeconds,
      envelopeSeconds: c.envelopeRoundSeconds,
      secaggSeconds: c.secaggRoundSeconds,
      envelopeRatio: c.envelopeRatio,
      secaggRatio: c.secaggRatio,
      repeats: c.repeats,
    };
  } catch (err) {
    perRoundNote = `per-round cost not measured: ${errorMessage(err)}`;
  }
  return {
    rows,
    envelopeRatio: largest?.envelopeRatio ?? null,
    envelopeVsChacha: largest?.envelopeRatio ?? null,
    envelopeWorkers: envelopeWorkerCount(),
    secaggRatio: largest?.secaggRatio ?? null,
    secaggPerMaskRatio: largest?.secaggPerMaskRatio ?? null,
    secaggVsKeystream: largest?.secaggVsKeystream ?? null,
    perRound,
    ...(perRoundNote !== undefined ? { perRoundNote } : {}),
    secaggNeighbours: NEIGHBOURS,
    secaggKeyAgreementSeconds:
      typeof secagg === "string" ? null : sig(await timeKeyAgreement(secagg, repeats)),
    ...(typeof secagg === "string" ? { secaggNote: secagg } : {}),
    repeats,
  };
}
