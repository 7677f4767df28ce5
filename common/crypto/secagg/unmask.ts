import nacl from "tweetnacl";
import { ErrorCode, FedsimError } from "../../errors.js";
import { maskSign, pairwiseMaskSeed, x25519Agreement } from "./pairwise.js";
import { addMasksInPlace, type MaskTerm } from "./prg.js";

/** A dropped client's mask key, rebuilt from its neighbours' shares, and who it masked with. */
export interface DroppedMaskKey {
  id: string;
  /** s_sk, as the Shamir shares rebuilt it. */
  secretKey: Uint8Array;
  /** The s_pk it advertised: the rebuilt key must match it. */
  advertisedPublicKey: Uint8Array;
  /** Its U1 neighbours that survived, each with the s_pk it advertised. */
  survivingNeighbours: readonly { id: string; sPublicKey: Uint8Array }[];
}

/**
 * Turns the mod-2^32 sum of the survivors' masked vectors into the sum of their inputs, in place:
 * takes out each survivor's self mask PRG(b) and every pairwise mask a survivor shared with a
 * dropped client. Addition mod 2^32 does not care how the masked vectors were grouped (one at a
 * time at the coordinator, or edges' masked partial sums added together): the same masks come out.
 * Throws SECAGG_PROTOCOL, leaving `sum` as it was, when a rebuilt key is not the advertised one.
 * Zeroes every seed it derived.
 */
export function removeMasks(
  sum: Uint32Array,
  selfSeeds: readonly Uint8Array[],
  dropped: readonly DroppedMaskKey[],
): void {
  const removals: MaskTerm[] = selfSeeds.map((seed) => ({ seed, sign: -1 }));
  try {
    for (const d of dropped) {
      if (d.survivingNeighbours.length === 0) continue;
      if (!equalBytes(nacl.scalarMult.base(d.secretKey), d.advertisedPublicKey)) {
        throw new FedsimError(
          ErrorCode.SECAGG_PROTOCOL,
          `the shares revealed for ${d.id} do not rebuild its mask key`,
        );
      }
      const agreement = x25519Agreement(d.secretKey);
      for (const neighbour of d.survivingNeighbours) {
        const seed = pairwiseMaskSeed(agreement, neighbour.sPublicKey);
        // The survivor added sign(neighbour, dropped)·PRG(seed); take it back out.
        removals.push({ seed, sign: maskSign(neighbour.id, d.id) === 1 ? -1 : 1 });
      }
    }
    addMasksInPlace(sum, removals);
  } finally {
    for (const { seed } of removals) seed.fill(0);
  }
}

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((byte, i) => byte === b[i]);
}
