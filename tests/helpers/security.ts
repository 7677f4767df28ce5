import nacl from "tweetnacl";
import { expect } from "vitest";
import { signChallenge } from "../../common/crypto/auth.js";
import {
  chunkHash,
  createRoundKeyPair,
  type Envelope,
  envelopeDigest,
  sealUpdate,
} from "../../common/crypto/envelope.js";
import { encodePublicKey, generateIdentity, type Identity } from "../../common/crypto/identity.js";
import { ErrorCode } from "../../common/errors.js";
import type { Ack, FitInstructions, FitResultMessage, Welcome } from "../../common/protocol.js";
import { encodePlainUpdate } from "../../common/update-codec.js";
import { float32ToBytes, totalSize } from "../../common/weights.js";
import type { FedsimSocket } from "../../server/socket-proxy.js";
import type { CoordinatorSocketServer } from "../../server/socket-server.js";
import { PATIENCE_MS } from "./eventually.js";
import { FAKE_METRICS, RogueClient } from "./rogue.js";

export interface IdentityHandshake {
  hello: Ack<Welcome>;
  /** Absent when the hello was refused (no challenge to answer). */
  prove?: Ack<{ clientId: string }>;
  /** The challenge and the signature sent for it, so a test can replay them. */
  challenge?: Uint8Array;
  signature?: Uint8Array;
}

/**
 * Says hello presenting `identity`'s public key and answers the challenge with a signature by
 * `signer` (the identity itself unless a test forges), or with `signature` verbatim when given.
 * On success the rogue's clientId is the one the coordinator assigned.
 */
export async function helloWithIdentity(
  rogue: RogueClient,
  identity: Identity,
  { signer = identity, signature }: { signer?: Identity; signature?: Uint8Array } = {},
): Promise<IdentityHandshake> {
  const hello = await rogue.hello({ publicKey: encodePublicKey(identity.publicKey) });
  if (!hello.ok || !hello.challenge) return { hello };
  const challenge = new Uint8Array(hello.challenge);
  const sent = signature ?? signChallenge(signer, challenge);
  const prove = (await rogue.socket.timeout(PATIENCE_MS).emitWithAck("prove", { signature: sent })) as Ack<{
    clientId: string;
  }>;
  if (prove.ok) rogue.clientId = prove.clientId;
  return { hello, prove, challenge, signature: sent };
}

/** Connects a raw client and proves `identity`, failing the test if the coordinator refuses. */
export async function admitRogueWithIdentity(url: string, identity: Identity): Promise<RogueClient> {
  const rogue = await RogueClient.connect(url);
  const handshake = await helloWithIdentity(rogue, identity);
  if (!handshake.prove?.ok) {
    rogue.close();
    throw new Error(
      `rogue with identity was not admitted: ${JSON.stringify(handshake.prove ?? handshake.hello)}`,
    );
  }
  return rogue;
}

export interface SealOptions {
  /** The delta to seal (zeros by default). */
  values?: Float32Array;
  numExamples?: number;
  /** Seal to this box key instead of the round's `envelopeKey`. */
  serverPublicKey?: Uint8Array;
  /** Sign with this key instead of the identity's own (a forgery). */
  signWith?: Identity;
}

/**
 * A fitResult whose update is sealed as a ClientNode would seal it: encodePlainUpdate, then
 * sealUpdate to the round key from the fit instructions, signed by `identity`.
 */
export async function sealedResult(
  ins: FitInstructions,
  identity: Identity,
  options: SealOptions = {},
): Promise<FitResultMessage & { envelope: Envelope }> {
  const serverPublicKey = options.serverPublicKey ?? ins.envelopeKey;
  if (!serverPublicKey) throw new Error("these fit instructions carry no envelopeKey");
  const values = options.values ?? new Float32Array(totalSize(ins.weights.specs));
  const plaintext = encodePlainUpdate({
    numExamples: options.numExamples ?? 100,
    delta: { specs: ins.weights.specs, data: float32ToBytes(values) },
    metrics: FAKE_METRICS,
  });
  // The box still names the real identity; only the outer signature comes from another key.
  const sealer = options.signWith
    ? { publicKey: identity.publicKey, secretKey: options.signWith.secretKey }
    : identity;
  const envelope = await sealUpdate({ round: ins.round, serverPublicKey, identity: sealer, plaintext });
  return { round: ins.round, nonce: ins.nonce, envelope };
}

/** The same ciphertext relabelled for another round and re-signed by its own signer. */
export function relabelEnvelope(envelope: Envelope, round: number, signer: Identity): Envelope {
  return resignEnvelope({ ...envelope, round }, signer);
}

/** Signs whatever the envelope now holds with `signer`'s key, as its own signer could. */
export function resignEnvelope(envelope: Envelope, signer: Identity): Envelope {
  const digest = envelopeDigest(envelope, envelope.chunks.map(chunkHash));
  return { ...envelope, signature: nacl.sign.detached(digest, signer.secretKey) };
}

export interface ReceivedMessage {
  clientId: string | undefined;
  payload: Record<string, unknown>;
}

/**
 * Records every `event` message the coordinator receives, as it arrives on the server socket
 * (before any handler): on the sockets already connected and on those that connect later.
 */
export function recordIncoming(sockets: CoordinatorSocketServer, event: string): ReceivedMessage[] {
  const received: ReceivedMessage[] = [];
  const listen = (socket: FedsimSocket) => {
    socket.prependAny((name: string, payload: unknown) => {
      if (name !== event) return;
      received.push({
        clientId: socket.data.clientId,
        payload: typeof payload === "object" && payload !== null ? (payload as Record<string, unknown>) : {},
      });
    });
  };
  for (const socket of sockets.io.sockets.sockets.values()) listen(socket);
  sockets.io.on("connection", listen);
  return received;
}

/**
 * Three rogues each answer their fit: the first with a forged signature (BAD_SIGNATURE), the
 * second sealed to another key (DECRYPT_FAILED), the third honestly with `values` (accepted),
 * then the same envelope again (REPLAY). Returns the honest rogue's sealed reply.
 */
export async function sendForgedMisaddressedHonest(
  rogues: readonly [RogueClient, RogueClient, RogueClient],
  fits: readonly [FitInstructions, FitInstructions, FitInstructions],
  identities: readonly [Identity, Identity, Identity],
  values: Float32Array,
): Promise<void> {
  const [forger, misaddressed, honest] = rogues;
  const forged = await sealedResult(fits[0], identities[0], { signWith: generateIdentity() });
  expect(await forger.sendResult(forged)).toMatchObject({ ok: false, code: ErrorCode.BAD_SIGNATURE });
  const elsewhere = await sealedResult(fits[1], identities[1], {
    serverPublicKey: createRoundKeyPair().publicKey,
  });
  expect(await misaddressed.sendResult(elsewhere)).toMatchObject({
    ok: false,
    code: ErrorCode.DECRYPT_FAILED,
  });
  const good = await sealedResult(fits[2], identities[2], { values, numExamples: 40 });
  expect(await honest.sendResult(good)).toEqual({ ok: true });
  expect(await honest.sendResult(good)).toMatchObject({ ok: false, code: ErrorCode.REPLAY });
}
