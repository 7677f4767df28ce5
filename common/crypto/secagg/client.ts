import nacl from "tweetnacl";
import { ErrorCode, FedsimError } from "../../errors.js";
import { compareIds } from "./graph.js";
import {
  type AdvertiseKeysMessage,
  clientIdSchema,
  decodeSharePlaintext,
  encodeSharePlaintext,
  type MaskedInputMessage,
  type NeighbourKeysMessage,
  neighbourKeysSchema,
  parseMessage,
  type RevealedShare,
  type RoutedSharesMessage,
  routedSharesSchema,
  type ShareKeysMessage,
  type UnmaskRequestMessage,
  type UnmaskResponseMessage,
  unmaskRequestSchema,
  vectorToBytes,
} from "./messages.js";
import { maskSign, pairwiseMaskSeed, shareEncryptionKey, x25519Agreement } from "./pairwise.js";
import { addMasksInPlace, SEED_BYTES } from "./prg.js";
import { splitSecret } from "./shamir.js";

/**
 * One client's side of one SecAgg round (Bonawitz et al. 2017, honest-but-curious variant, with
 * SecAgg+ neighbourhoods). Call, in order: advertiseKeys → shareKeys → maskedInput → unmask. Each
 * step validates the server's message before changing any state, so a refused message (wrong
 * round, wrong recipient, out of order) leaves the session as it was. Secrets are zeroed as soon
 * as they are no longer needed, and all of them when the session ends (after unmask, or close()).
 */

export interface SecAggClientOptions {
  clientId: string;
  round: number;
}

export type SecAggClientPhase = "new" | "advertised" | "sharing" | "sharedKeys" | "masked" | "closed";

interface HeldShares {
  secretKeyShare: Uint8Array;
  seedShare: Uint8Array;
}

export class SecAggClientSession {
  readonly clientId: string;
  readonly round: number;
  #phase: SecAggClientPhase = "new";
  #cKeys: nacl.BoxKeyPair | null = null;
  #sKeys: nacl.BoxKeyPair | null = null;
  #threshold = 0;
  #neighbourIds = new Set<string>();
  /** Secrets agreed with each neighbour in round 1 and used in round 2. */
  #shareKeys = new Map<string, Uint8Array>();
  #maskSeeds = new Map<string, Uint8Array>();
  /** b: the self-mask seed, needed until the masked input is made. */
  #seed: Uint8Array | null = null;
  /** This client's own shares of b and of s_sk, and those its neighbours in U1 sent it. */
  #held = new Map<string, HeldShares>();
  /** The neighbours it masked with (U1 ∩ its neighbourhood). */
  #maskedWith = new Set<string>();

  constructor(options: SecAggClientOptions) {
    const id = clientIdSchema.safeParse(options.clientId);
    if (!id.success) {
      throw new FedsimError(ErrorCode.INVALID_CONFIG, "clientId must be a string of 1 to 256 characters");
    }
    if (!Number.isInteger(options.round) || options.round < 0 || options.round > 0xffff_ffff) {
      throw new FedsimError(ErrorCode.INVALID_CONFIG, `round must be a uint32 (got ${options.round})`);
    }
    this.clientId = options.clientId;
    this.round = options.round;
  }

  get phase(): SecAggClientPhase {
    return this.#phase;
  }

  /** Round 0: two fresh X25519 key pairs, c for sealing shares and s for pairwise masks. */
  advertiseKeys(): AdvertiseKeysMessage {
    this.#requirePhase("new", "advertiseKeys");
    this.#cKeys = nacl.box.keyPair();
    this.#sKeys = nacl.box.keyPair();
    this.#phase = "advertised";
    return {
      round: this.round,
      clientId: this.clientId,
      cPublicKey: this.#cKeys.publicKey,
      sPublicKey: this.#sKeys.publicKey,
    };
  }

  /**
   * Round 1: draws the self-mask seed b, Shamir-splits b and s_sk t-of-(k+1) over itself and its
   * k neighbours, and seals each neighbour's pair of shares for that neighbour only.
   */
  async shareKeys(message: NeighbourKeysMessage): Promise<ShareKeysMessage> {
    const msg = parseMessage(neighbourKeysSchema, message, "NeighbourKeys");
    this.#requireAddressedToMe(msg.round, msg.recipient);
    this.#requirePhase("advertised", "shareKeys");
    const cKeys = this.#cKeys!;
    const sKeys = this.#sKeys!;
    const neighbours = [...msg.neighbours].sort((a, b) => compareIds(a.clientId, b.clientId));
    const seenKeys = new Set([hex(cKeys.publicKey), hex(sKeys.publicKey)]);
    for (const [index, neighbour] of neighbours.entries()) {
      if (neighbour.clientId === this.clientId)
        throw protocolError("the server listed this client as its own neighbour");
      if (index > 0 && neighbours[index - 1].clientId === neighbour.clientId) {
        throw protocolError(`neighbour ${neighbour.clientId} is listed twice`);
      }
      for (const key of [neighbour.cPublicKey, neighbour.sPublicKey]) {
        // Bonawitz et al.: abort on repeated keys, which would let one party pose as two.
        if (seenKeys.has(hex(key)))
          throw protocolError(`neighbour ${neighbour.clientId} reuses a public key`);
        seenKeys.add(hex(key));
      }
    }
    const holders = neighbours.length + 1;
    if (holders < msg.threshold) {
      throw new FedsimError(
        ErrorCode.SECAGG_THRESHOLD,
        `only ${holders} share holders (this client and ${neighbours.length} neighbours), threshold ${msg.threshold}`,
      );
    }
    if (2 * msg.threshold <= holders) {
      throw protocolError(`threshold ${msg.threshold} is not a majority of ${holders} share holders`);
    }

    this.#phase = "sharing";
    const agreed = new Map<string, { shareKey: Uint8Array; maskSeed: Uint8Array }>();
    const seed = nacl.randomBytes(SEED_BYTES);
    let seedShares: Uint8Array[] = [];
    let keyShares: Uint8Array[] = [];
    try {
      const cAgreement = x25519Agreement(cKeys.secretKey);
      const sAgreement = x25519Agreement(sKeys.secretKey);
      for (const neighbour of neighbours) {
        agreed.set(neighbour.clientId, {
          shareKey: shareEncryptionKey(cAgreement, neighbour.cPublicKey),
          maskSeed: pairwiseMaskSeed(sAgreement, neighbour.sPublicKey),
        });
      }
      seedShares = await splitSecret(seed, holders, msg.threshold);
      keyShares = await splitSecret(sKeys.secretKey, holders, msg.threshold);
      if (this.#phase !== "sharing") throw protocolError("the session was closed during shareKeys");
    } catch (err) {
      for (const { shareKey, maskSeed } of agreed.values()) zero(shareKey, maskSeed);
      zero(seed, ...seedShares, ...keyShares);
      if (this.#phase === "sharing") this.close();
      throw err;
    }

    // Share 0 stays with this client; share i+1 goes to the i-th neighbour in id order.
    this.#held.set(this.clientId, { secretKeyShare: keyShares[0], seedShare: seedShares[0] });
    const shares = neighbours.map((neighbour, index) => {
      const plaintext = encodeSharePlaintext({
        round: this.round,
        from: this.clientId,
        to: neighbour.clientId,
        secretKeyShare: keyShares[index + 1],
        seedShare: seedShares[index + 1],
      });
      const nonce = nacl.randomBytes(nacl.box.nonceLength);
      const ciphertext = nacl.secretbox(plaintext, nonce, agreed.get(neighbour.clientId)!.shareKey);
      zero(plaintext, keyShares[index + 1], seedShares[index + 1]);
      return { from: this.clientId, to: neighbour.clientId, nonce, ciphertext };
    });
    for (const [id, { shareKey, maskSeed }] of agreed) {
      this.#shareKeys.set(id, shareKey);
      this.#maskSeeds.set(id, maskSeed);
    }
    this.#neighbourIds = new Set(neighbours.map((n) => n.clientId));
    this.#threshold = msg.threshold;
    this.#seed = seed;
    // Past this point nothing needs the secret keys themselves: s_sk lives on only as shares.
    zero(cKeys.secretKey, sKeys.secretKey);
    this.#phase = "sharedKeys";
    return { round: this.round, clientId: this.clientId, shares };
  }

  /**
   * Round 2: opens the shares its neighbours sent (their senders form U1), then returns
   * y = x + PRG(b) + Σ_{j ∈ U1 neighbours} sign(i, j)·PRG(s_ij)  (mod 2^32).
   * `input` is the quantised update; it is not modified.
   */
  maskedInput(message: RoutedSharesMessage, input: Uint32Array): MaskedInputMessage {
    const msg = parseMessage(routedSharesSchema, message, "RoutedShares");
    this.#requireAddressedToMe(msg.round, msg.recipient);
    this.#requirePhase("sharedKeys", "maskedInput");
    if (!(input instanceof Uint32Array) || input.length === 0) {
      throw new FedsimError(ErrorCode.BAD_SHAPE, "input must be a non-empty Uint32Array (use quantize())");
    }
    const opened = new Map<string, HeldShares>();
    try {
      for (const share of msg.shares) {
        if (share.to !== this.clientId)
          throw protocolError(`a share addressed to ${share.to} was routed here`);
        if (!this.#neighbourIds.has(share.from)) {
          throw new FedsimError(ErrorCode.UNKNOWN_CLIENT, `share from ${share.from}, who is not a neighbour`);
        }
        if (opened.has(share.from))
          throw new FedsimError(ErrorCode.DUPLICATE, `two shares from ${share.from}`);
        const plaintext = nacl.secretbox.open(
          share.ciphertext,
          share.nonce,
          this.#shareKeys.get(share.from)!,
        );
        if (plaintext === null) {
          throw new FedsimError(ErrorCode.DECRYPT_FAILED, `the share from ${share.from} does not decrypt`);
        }
        let plain: ReturnType<typeof decodeSharePlaintext>;
        try {
          plain = decodeSharePlaintext(plaintext);
        } finally {
          zero(plaintext);
        }
        opened.set(share.from, { secretKeyShare: plain.secretKeyShare, seedShare: plain.seedShare });
        // The sealed header binds the share to its round and both ends, so the server cannot replay
        // or redirect it.
        if (plain.round !== this.round || plain.from !== share.from || plain.to !== this.clientId) {
          throw protocolError(`the share from ${share.from} is for another round or pair`);
        }
      }
      if (opened.size + 1 < this.#threshold) {
        throw new FedsimError(
          ErrorCode.SECAGG_THRESHOLD,
          `only ${opened.size} of ${this.#neighbourIds.size} neighbours shared keys; with this client that is ` +
            `below the threshold ${this.#threshold}`,
        );
      }
    } catch (err) {
      for (const held of opened.values()) zero(held.secretKeyShare, held.seedShare);
      throw err;
    }

    const masked = new Uint32Array(input);
    addMasksInPlace(masked, [
      { seed: this.#seed!, sign: 1 },
      ...[...opened.keys()].sort(compareIds).map((neighbour) => ({
        seed: this.#maskSeeds.get(neighbour)!,
        sign: maskSign(this.clientId, neighbour),
      })),
    ]);
    for (const [id, held] of opened) this.#held.set(id, held);
    this.#maskedWith = new Set(opened.keys());
    this.#zeroRoundOneSecrets();
    this.#phase = "masked";
    return { round: this.round, clientId: this.clientId, masked: vectorToBytes(masked) };
  }

  /**
   * Round 3: reveals, for each holder-group member, exactly one share: the seed share of a
   * survivor or the mask-key share of a dropped client. Refuses any request that is not a
   * partition of {itself} ∪ (U1 neighbours) into survived and dropped, so the server can never get
   * both shares of one client from this client. Ends the session.
   */
  unmask(message: UnmaskRequestMessage): UnmaskResponseMessage {
    const msg = parseMessage(unmaskRequestSchema, message, "UnmaskRequest");
    this.#requireAddressedToMe(msg.round, msg.recipient);
    this.#requirePhase("masked", "unmask");
    const survived = new Set(msg.survived);
    const dropped = new Set(msg.dropped);
    if (survived.size !== msg.survived.length || dropped.size !== msg.dropped.length) {
      throw protocolError("the unmask request lists a client twice");
    }
    for (const id of dropped) {
      if (survived.has(id))
        throw protocolError(`asked for both shares of ${id} (listed as survived and dropped)`);
    }
    if (!survived.has(this.clientId))
      throw protocolError("the unmask request does not list this client as survived");
    const expected = new Set([this.clientId, ...this.#maskedWith]);
    for (const id of [...survived, ...dropped]) {
      if (!expected.has(id)) throw protocolError(`the unmask request names ${id}, who is not a U1 neighbour`);
    }
    if (survived.size + dropped.size !== expected.size) {
      throw protocolError("the unmask request leaves out some of this client's U1 neighbours");
    }
    if (survived.size < this.#threshold) {
      throw new FedsimError(
        ErrorCode.SECAGG_THRESHOLD,
        `only ${survived.size} of this client's holders survived, threshold ${this.#threshold}`,
      );
    }
    const reveal = (ids: Set<string>, pick: (held: HeldShares) => Uint8Array): RevealedShare[] =>
      [...ids]
        .sort(compareIds)
        .map((owner) => ({ owner, share: new Uint8Array(pick(this.#held.get(owner)!)) }));
    const response: UnmaskResponseMessage = {
      round: this.round,
      clientId: this.clientId,
      seedShares: reveal(survived, (held) => held.seedShare),
      secretKeyShares: reveal(dropped, (held) => held.secretKeyShare),
    };
    this.close();
    return response;
  }

  /** Ends the session and zeroes every secret it holds. Safe to call more than once. */
  close(): void {
    if (this.#cKeys) zero(this.#cKeys.secretKey);
    if (this.#sKeys) zero(this.#sKeys.secretKey);
    this.#zeroRoundOneSecrets();
    for (const held of this.#held.values()) zero(held.secretKeyShare, held.seedShare);
    this.#held.clear();
    this.#phase = "closed";
  }

  #zeroRoundOneSecrets(): void {
    for (const key of this.#shareKeys.values()) zero(key);
    for (const seed of this.#maskSeeds.values()) zero(seed);
    this.#shareKeys.clear();
    this.#maskSeeds.clear();
    if (this.#seed) zero(this.#seed);
    this.#seed = null;
  }

  #requireAddressedToMe(round: number, recipient: string): void {
    if (round !== this.round) {
      throw new FedsimError(
        ErrorCode.STALE_ROUND,
        `message for round ${round}, this session is round ${this.round}`,
      );
    }
    if (recipient !== this.clientId) {
      throw protocolError(`message for ${recipient} delivered to ${this.clientId}`);
    }
  }

  #requirePhase(expected: SecAggClientPhase, step: string): void {
    if (this.#phase !== expected) {
      throw protocolError(`${step} is not allowed in phase ${this.#phase} (expected ${expected})`);
    }
  }
}

function protocolError(message: string): FedsimError {
  return new FedsimError(ErrorCode.SECAGG_PROTOCOL, message);
}

function zero(...arrays: Uint8Array[]): void {
  for (const array of arrays) array.fill(0);
}

function hex(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("hex");
}
