import { ErrorCode, FedsimError } from "../../errors.js";
import { compareIds, type SecAggGraph, validateSessionOptions } from "./graph.js";
import {
  type AdvertiseKeysMessage,
  advertiseKeysSchema,
  bytesToVector,
  type EncryptedShare,
  type MaskedInputMessage,
  maskedInputSchema,
  type NeighbourKeysMessage,
  type PublicKeys,
  parseMessage,
  type RoutedSharesMessage,
  type ShareKeysMessage,
  shareKeysSchema,
  type UnmaskRequestMessage,
  type UnmaskResponseMessage,
  unmaskResponseSchema,
} from "./messages.js";
import { addMod } from "./quantize.js";
import { combineShares } from "./shamir.js";
import { type DroppedMaskKey, removeMasks } from "./unmask.js";

/**
 * The coordinator's side of one SecAgg round. It only routes what it cannot read and, at the end,
 * learns the sum of the survivors' quantised inputs. Sets, as in the paper: U0 advertised keys,
 * U1 shared keys, U2 sent a masked input (the survivors, whose inputs are in the sum), U3 answered
 * the unmask request. Call receive* for each message the transport delivers, passing the sender's
 * authenticated id; call the next step's method when the collection deadline passes.
 */

export interface SecAggServerOptions {
  round: number;
  /** The clients selected for this round; the graph must be over exactly these. */
  clientIds: string[];
  graph: SecAggGraph;
  /** Shamir threshold t over each client's holders (itself and its neighbours): 2t > k+1. */
  threshold: number;
  /** Length of the masked vectors; by default the first one received fixes it. */
  vectorLength?: number;
}

export type SecAggServerPhase = "advertise" | "shareKeys" | "maskedInput" | "unmask" | "done" | "closed";

export class SecAggServerSession {
  readonly round: number;
  readonly threshold: number;
  readonly #ids: Set<string>;
  readonly #graph: Map<string, Set<string>>;
  #phase: SecAggServerPhase = "advertise";
  #vectorLength: number | undefined;
  /** U0, with each client's advertised keys. */
  #keys = new Map<string, PublicKeys>();
  /** U1: each sender's ciphertexts, by recipient. */
  #outgoing = new Map<string, Map<string, EncryptedShare>>();
  /** U2, and the running sum of their masked inputs. */
  #survivors = new Set<string>();
  #sum: Uint32Array | null = null;
  #requests = new Map<string, UnmaskRequestMessage>();
  /** U3. */
  #responses = new Map<string, UnmaskResponseMessage>();

  constructor(options: SecAggServerOptions) {
    const { round, clientIds, threshold, vectorLength } = options;
    this.#graph = validateSessionOptions(options);
    this.round = round;
    this.threshold = threshold;
    this.#ids = new Set(clientIds);
    this.#vectorLength = vectorLength;
  }

  get phase(): SecAggServerPhase {
    return this.#phase;
  }

  /** U2 in id order: the clients whose inputs the unmasked sum contains. */
  get survivors(): string[] {
    return [...this.#survivors].sort(compareIds);
  }

  /** U1 \ U2: shared keys but sent no masked input. */
  get dropped(): string[] {
    return [...this.#outgoing.keys()].filter((id) => !this.#survivors.has(id)).sort(compareIds);
  }

  receiveAdvertiseKeys(senderId: string, message: AdvertiseKeysMessage): void {
    const msg = parseMessage(advertiseKeysSchema, message, "AdvertiseKeys");
    this.#admit(senderId, msg.round, msg.clientId, "advertise", this.#ids, this.#keys, "AdvertiseKeys");
    this.#keys.set(senderId, { clientId: senderId, cPublicKey: msg.cPublicKey, sPublicKey: msg.sPublicKey });
  }

  /** Closes round 0: to each client in U0, the keys of its neighbours in U0. */
  neighbourKeys(): Record<string, NeighbourKeysMessage> {
    this.#requirePhase("advertise", "neighbourKeys");
    const u0 = new Set(this.#keys.keys());
    this.#requireHolders(u0, (id) => [id, ...this.#graph.get(id)!], u0, "advertised keys");
    const out: Record<string, NeighbourKeysMessage> = {};
    for (const id of sorted(u0)) {
      out[id] = {
        round: this.round,
        recipient: id,
        threshold: this.threshold,
        neighbours: this.#neighboursIn(id, u0).map((n) => this.#keys.get(n)!),
      };
    }
    this.#phase = "shareKeys";
    return out;
  }

  receiveShareKeys(senderId: string, message: ShareKeysMessage): void {
    const msg = parseMessage(shareKeysSchema, message, "ShareKeys");
    this.#admit(senderId, msg.round, msg.clientId, "shareKeys", this.#keys, this.#outgoing, "ShareKeys");
    const expected = new Set(this.#neighboursIn(senderId, this.#keys));
    const byRecipient = new Map<string, EncryptedShare>();
    for (const share of msg.shares) {
      if (share.from !== senderId)
        throw protocolError(`${senderId} sent a share marked as from ${share.from}`);
      if (!expected.has(share.to))
        throw protocolError(`${senderId} sent a share to ${share.to}, not a neighbour`);
      if (byRecipient.has(share.to))
        throw new FedsimError(ErrorCode.DUPLICATE, `${senderId} sent two shares to ${share.to}`);
      byRecipient.set(share.to, share);
    }
    if (byRecipient.size !== expected.size) {
      throw protocolError(`${senderId} sent ${byRecipient.size} shares for ${expected.size} neighbours`);
    }
    this.#outgoing.set(senderId, byRecipient);
  }

  /** Closes round 1: to each client in U1, the ciphertexts its U1 neighbours sealed for it. */
  routeShares(): Record<string, RoutedSharesMessage> {
    this.#requirePhase("shareKeys", "routeShares");
    const u1 = new Set(this.#outgoing.keys());
    this.#requireHolders(u1, (id) => [id, ...this.#graph.get(id)!], u1, "shared keys");
    const out: Record<string, RoutedSharesMessage> = {};
    for (const id of sorted(u1)) {
      const shares = this.#neighboursIn(id, u1).map((from) => this.#outgoing.get(from)!.get(id)!);
      out[id] = { round: this.round, recipient: id, shares };
    }
    this.#phase = "maskedInput";
    return out;
  }

  /** Adds the masked vector into the running sum at once; individual vectors are not kept. */
  receiveMaskedInput(senderId: string, message: MaskedInputMessage): void {
    const msg = parseMessage(maskedInputSchema, message, "MaskedInput");
    this.#admitMasked(senderId, msg.round, msg.clientId);
    this.#addMasked([senderId], bytesToVector(msg.masked), senderId);
  }

  /**
   * Adds the mod-2^32 sum of several clients' masked vectors, made elsewhere (an edge's masked
   * partial sum, docs/SCALE-OUT.md), as if each client's vector had arrived here: every one of
   * `senderIds` joins U2. Masks cancel in any grouping of the additions, so unmasking is unchanged.
   * All or nothing: refused whole if any sender may not send a masked input now.
   */
  receiveMaskedSum(senderIds: readonly string[], summed: Uint32Array): void {
    if (senderIds.length === 0) throw protocolError("a masked sum over no clients");
    if (new Set(senderIds).size !== senderIds.length)
      throw new FedsimError(ErrorCode.DUPLICATE, "a masked sum names a client twice");
    for (const id of senderIds) this.#admitMasked(id, this.round, id);
    this.#addMasked(senderIds, summed, `the masked sum over ${senderIds.length} clients`);
  }

  /**
   * Closes round 2: tells each survivor which of its U1 neighbours survived and which dropped.
   * Throws SECAGG_THRESHOLD, before revealing anything, if some needed secret would have fewer
   * than t surviving holders.
   */
  unmaskRequests(): Record<string, UnmaskRequestMessage> {
    this.#requirePhase("maskedInput", "unmaskRequests");
    this.#requireUnmaskable(this.#survivors, "survived round 2");
    const u1 = new Set(this.#outgoing.keys());
    const out: Record<string, UnmaskRequestMessage> = {};
    for (const id of this.survivors) {
      const group = [id, ...this.#neighboursIn(id, u1)].sort(compareIds);
      out[id] = {
        round: this.round,
        recipient: id,
        dropped: group.filter((g) => !this.#survivors.has(g)),
        survived: group.filter((g) => this.#survivors.has(g)),
      };
      this.#requests.set(id, out[id]);
    }
    this.#phase = "unmask";
    return out;
  }

  receiveUnmaskResponse(senderId: string, message: UnmaskResponseMessage): void {
    const msg = parseMessage(unmaskResponseSchema, message, "UnmaskResponse");
    this.#admit(
      senderId,
      msg.round,
      msg.clientId,
      "unmask",
      this.#requests,
      this.#responses,
      "UnmaskResponse",
    );
    const request = this.#requests.get(senderId)!;
    const sameOwners = (revealed: { owner: string }[], wanted: string[]) =>
      revealed.length === wanted.length &&
      sorted(new Set(revealed.map((r) => r.owner))).join("\n") === [...wanted].sort(compareIds).join("\n");
    if (!sameOwners(msg.seedShares, request.survived) || !sameOwners(msg.secretKeyShares, request.dropped)) {
      throw protocolError(`${senderId} revealed shares for other clients than it was asked for`);
    }
    this.#responses.set(senderId, msg);
  }

  /**
   * Closes round 3 and returns the exact mod-2^32 sum of the survivors' quantised inputs: removes
   * each survivor's self-mask PRG(b) and the pairwise masks survivors shared with dropped clients.
   * Throws SECAGG_THRESHOLD (state unchanged; more responses may still arrive) if fewer than t
   * holders answered for some secret.
   */
  async unmask(): Promise<Uint32Array> {
    this.#requirePhase("unmask", "unmask");
    const answered = new Set(this.#responses.keys());
    this.#requireUnmaskable(answered, "answered the unmask request");
    const sum = this.#sum!;
    const selfSeeds: Uint8Array[] = [];
    const dropped: DroppedMaskKey[] = [];
    try {
      for (const survivor of this.survivors)
        selfSeeds.push(await combineShares(this.#revealed(survivor, "seedShares")));
      for (const id of this.dropped) {
        const survivingNeighbours = this.#neighboursIn(id, this.#survivors).map((n) => ({
          id: n,
          sPublicKey: this.#keys.get(n)!.sPublicKey,
        }));
        if (survivingNeighbours.length === 0) continue;
        const secretKey = await combineShares(this.#revealed(id, "secretKeyShares"));
        dropped.push({
          id,
          secretKey,
          advertisedPublicKey: this.#keys.get(id)!.sPublicKey,
          survivingNeighbours,
        });
      }
      removeMasks(sum, selfSeeds, dropped);
    } catch (err) {
      this.close();
      throw err;
    } finally {
      for (const seed of selfSeeds) seed.fill(0);
      for (const d of dropped) d.secretKey.fill(0);
    }
    this.#sum = null;
    this.#phase = "done";
    this.close(); // zeroes the revealed shares; the phase stays "done"
    return sum;
  }

  /** Ends the session, dropping collected material. Safe to call more than once. */
  close(): void {
    this.#sum?.fill(0);
    this.#sum = null;
    for (const response of this.#responses.values()) {
      for (const r of [...response.seedShares, ...response.secretKeyShares]) r.share.fill(0);
    }
    this.#responses.clear();
    if (this.#phase !== "done") this.#phase = "closed";
  }

  /** The first t shares (by holder id) revealed for `owner`'s secret of the given kind. */
  #revealed(owner: string, kind: "seedShares" | "secretKeyShares"): Uint8Array[] {
    const shares: Uint8Array[] = [];
    for (const holder of sorted(new Set(this.#responses.keys()))) {
      const found = this.#responses.get(holder)![kind].find((r) => r.owner === owner);
      if (found) shares.push(found.share);
      if (shares.length === this.threshold) break;
    }
    return shares;
  }

  /**
   * Every survivor's seed needs t holders among `alive` (itself and its U1 neighbours), and every
   * dropped client with a surviving neighbour needs t of its U1 neighbours in `alive`.
   */
  #requireUnmaskable(alive: Set<string>, what: string): void {
    const u1 = new Set(this.#outgoing.keys());
    const survivorsHolders = (id: string) => [id, ...this.#neighboursIn(id, u1)];
    this.#requireHolders(this.#survivors, survivorsHolders, alive, what);
    const needed = this.dropped.filter((id) => this.#neighboursIn(id, this.#survivors).length > 0);
    this.#requireHolders(new Set(needed), (id) => this.#neighboursIn(id, u1), alive, what);
  }

  #requireHolders(
    owners: Set<string>,
    holdersOf: (id: string) => string[],
    alive: Set<string>,
    what: string,
  ): void {
    if (owners.size === 0 && alive.size === 0) {
      throw new FedsimError(ErrorCode.SECAGG_THRESHOLD, `no client ${what} (threshold ${this.threshold})`);
    }
    const short: string[] = [];
    for (const owner of sorted(owners)) {
      const holders = holdersOf(owner);
      const count = holders.filter((h) => alive.has(h)).length;
      if (count < this.threshold)
        short.push(`${owner}: ${count} of its ${holders.length} share holders ${what}`);
    }
    if (short.length > 0) {
      throw new FedsimError(
        ErrorCode.SECAGG_THRESHOLD,
        `${alive.size} of ${this.#ids.size} clients ${what}, but ${short.length} secret(s) would have fewer ` +
          `share holders than the threshold ${this.threshold}`,
        short.slice(0, 20),
      );
    }
  }

  #neighboursIn(id: string, members: { has(id: string): boolean }): string[] {
    return sorted(this.#graph.get(id)!).filter((n) => members.has(n));
  }

  #admit(
    senderId: string,
    round: number,
    claimedId: string,
    phase: SecAggServerPhase,
    allowed: { has(id: string): boolean },
    received: { has(id: string): boolean },
    what: string,
  ): void {
    if (round !== this.round) {
      throw new FedsimError(
        ErrorCode.STALE_ROUND,
        `${what} for round ${round}, this session is round ${this.round}`,
      );
    }
    if (!this.#ids.has(senderId)) {
      throw new FedsimError(ErrorCode.UNKNOWN_CLIENT, `${what} from ${senderId}, who is not in this round`);
    }
    if (claimedId !== senderId) {
      throw new FedsimError(
        ErrorCode.UNAUTHORIZED,
        `${what} from ${senderId} claims to be from ${claimedId}`,
      );
    }
    if (this.#phase !== phase) {
      throw protocolError(`${what} from ${senderId} arrived in phase ${this.#phase}`);
    }
    if (!allowed.has(senderId)) {
      throw protocolError(`${what} from ${senderId}, who dropped out of an earlier step`);
    }
    if (received.has(senderId)) throw new FedsimError(ErrorCode.DUPLICATE, `second ${what} from ${senderId}`);
  }

  #admitMasked(senderId: string, round: number, claimedId: string): void {
    this.#admit(senderId, round, claimedId, "maskedInput", this.#outgoing, this.#survivors, "MaskedInput");
  }

  #addMasked(senderIds: readonly string[], vector: Uint32Array, from: string): void {
    if (this.#vectorLength !== undefined && vector.length !== this.#vectorLength) {
      throw new FedsimError(
        ErrorCode.BAD_SHAPE,
        `${from} has ${vector.length} masked values, expected ${this.#vectorLength}`,
      );
    }
    this.#vectorLength = vector.length;
    if (this.#sum === null) this.#sum = new Uint32Array(vector.length);
    addMod(this.#sum, vector);
    for (const id of senderIds) this.#survivors.add(id);
  }

  #requirePhase(expected: SecAggServerPhase, step: string): void {
    if (this.#phase !== expected) {
      throw protocolError(`${step} is not allowed in phase ${this.#phase} (expected ${expected})`);
    }
  }
}

function protocolError(message: string): FedsimError {
  return new FedsimError(ErrorCode.SECAGG_PROTOCOL, message);
}

function sorted(ids: Iterable<string>): string[] {
  return [...ids].sort(compareIds);
}
