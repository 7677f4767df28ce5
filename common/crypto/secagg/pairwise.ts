import { createHash, createPrivateKey, createPublicKey, diffieHellman, type KeyObject } from "node:crypto";
import { ErrorCode, FedsimError } from "../../errors.js";

/**
 * Key agreement between two SecAgg clients, shared by the client (masking, share encryption) and
 * the server (removing a dropped client's masks).
 *
 * Keys are made with tweetnacl (nacl.box.keyPair: raw 32-byte X25519 keys), but the agreement
 * itself runs on node:crypto's native X25519: the same RFC 7748 function as nacl.scalarMult
 * (tests check equality) and far faster once the secret key is imported (about 0.2 ms per
 * agreement vs 2.6 ms for nacl.scalarMult here); a client does two per neighbour per round.
 * Low-order public keys, whose shared secret is all zeros and so public, are refused.
 *
 * The imported KeyObject lives in OpenSSL memory until garbage collection and cannot be zeroed
 * from JS; the raw key bytes and DER copies are zeroed by their owners.
 */

// The DER prefix that wraps a raw X25519 private key as PKCS#8 (RFC 8410). DER rather than JWK so
// that the only copy of the secret outside the caller's array is a Buffer we can zero.
const PKCS8_X25519_PREFIX = Buffer.from("302e020100300506032b656e04220420", "hex");
const SHARE_KEY_DOMAIN = new TextEncoder().encode("fedsim-secagg-share-key-v1");

/**
 * X25519 with one secret key against many public keys. Importing the secret key is the costly
 * part (OpenSSL derives its public key), so a client imports each of its keys once per round.
 */
export interface X25519Agreement {
  agree(publicKey: Uint8Array): Uint8Array;
}

export function x25519Agreement(secretKey: Uint8Array): X25519Agreement {
  if (secretKey.length !== 32)
    throw new FedsimError(ErrorCode.SECAGG_PROTOCOL, "X25519 secret keys are 32 bytes");
  const privateDer = Buffer.concat([PKCS8_X25519_PREFIX, secretKey]);
  let privateKey: KeyObject;
  try {
    privateKey = createPrivateKey({ key: privateDer, format: "der", type: "pkcs8" });
  } catch (err) {
    throw new FedsimError(
      ErrorCode.SECAGG_PROTOCOL,
      `malformed X25519 secret key: ${(err as Error).message}`,
    );
  } finally {
    privateDer.fill(0);
  }
  return {
    agree(publicKey: Uint8Array): Uint8Array {
      if (publicKey.length !== 32)
        throw new FedsimError(ErrorCode.SECAGG_PROTOCOL, "X25519 public keys are 32 bytes");
      try {
        // JWK, not DER: OpenSSL's DER decoder costs ~10× more, and this runs twice per neighbour.
        const x = Buffer.from(publicKey.buffer, publicKey.byteOffset, publicKey.byteLength).toString(
          "base64url",
        );
        const peerKey = createPublicKey({ key: { kty: "OKP", crv: "X25519", x }, format: "jwk" });
        const shared = new Uint8Array(diffieHellman({ privateKey, publicKey: peerKey }));
        if (shared.every((byte) => byte === 0)) throw new Error("all-zero shared secret");
        return shared;
      } catch (err) {
        throw new FedsimError(
          ErrorCode.SECAGG_PROTOCOL,
          `X25519 agreement failed (low-order or malformed public key): ${(err as Error).message}`,
        );
      }
    },
  };
}

/** X25519(secretKey, publicKey), equal to nacl.scalarMult(secretKey, publicKey). */
export function x25519(secretKey: Uint8Array, publicKey: Uint8Array): Uint8Array {
  return x25519Agreement(secretKey).agree(publicKey);
}

/**
 * s_ij = sha256(X25519(s_sk_i, s_pk_j)), the same 32 bytes for i and j. Client i adds
 * sign(i, j)·PRG(s_ij) and j adds sign(j, i)·PRG(s_ij), the opposite, so the pair cancels.
 */
export function pairwiseMaskSeed(own: X25519Agreement | Uint8Array, sPublicKey: Uint8Array): Uint8Array {
  return hashShared(agreement(own).agree(sPublicKey));
}

/**
 * The symmetric key under which i and j seal Shamir shares for each other (nacl.secretbox, i.e.
 * nacl.box.after): sha256(domain ‖ X25519(c_sk_i, c_pk_j)). The domain tag keeps it distinct from
 * any other use of the same shared point.
 */
export function shareEncryptionKey(own: X25519Agreement | Uint8Array, cPublicKey: Uint8Array): Uint8Array {
  return hashShared(agreement(own).agree(cPublicKey), SHARE_KEY_DOMAIN);
}

/** +1 if self sorts before other (UTF-16 string order), else −1. */
export function maskSign(self: string, other: string): 1 | -1 {
  return self < other ? 1 : -1;
}

function agreement(own: X25519Agreement | Uint8Array): X25519Agreement {
  return own instanceof Uint8Array ? x25519Agreement(own) : own;
}

function hashShared(shared: Uint8Array, domain?: Uint8Array): Uint8Array {
  const hash = createHash("sha256");
  if (domain) hash.update(domain);
  const digest = hash.update(shared).digest();
  shared.fill(0);
  const out = new Uint8Array(digest);
  digest.fill(0);
  return out;
}
