import { combine, split } from "shamir-secret-sharing";
import { ErrorCode, FedsimError } from "../../errors.js";

/**
 * t-of-n Shamir secret sharing over GF(2^8), byte by byte, through the audited
 * `shamir-secret-sharing` package. A share is the secret's length plus one byte: the y-values for
 * each secret byte, then the share's x-coordinate (1..255, distinct, randomly assigned) as the
 * last byte. Combining needs no other metadata.
 *
 * Limits of the field, enforced here with typed errors: at most 255 shares, threshold ≥ 2, and the
 * shares of one secret must have distinct non-zero x-coordinates. Combining fewer than `threshold`
 * shares does NOT fail: it silently yields unrelated bytes, so callers count shares first.
 */

export const MAX_SHARES = 255;
export const MIN_THRESHOLD = 2;

export async function splitSecret(
  secret: Uint8Array,
  shares: number,
  threshold: number,
): Promise<Uint8Array[]> {
  if (!(secret instanceof Uint8Array) || secret.length === 0) {
    throw new FedsimError(ErrorCode.INVALID_CONFIG, "secret must be a non-empty Uint8Array");
  }
  if (!Number.isInteger(shares) || shares < MIN_THRESHOLD || shares > MAX_SHARES) {
    throw new FedsimError(
      ErrorCode.INVALID_CONFIG,
      `shares must be an integer in [${MIN_THRESHOLD}, ${MAX_SHARES}] (got ${shares})`,
    );
  }
  if (!Number.isInteger(threshold) || threshold < MIN_THRESHOLD || threshold > shares) {
    throw new FedsimError(
      ErrorCode.INVALID_CONFIG,
      `threshold must be an integer in [${MIN_THRESHOLD}, shares=${shares}] (got ${threshold})`,
    );
  }
  // The package checks `constructor === Uint8Array`, which a Node Buffer fails: copy into a plain one.
  const plain = new Uint8Array(secret);
  try {
    return await split(plain, shares, threshold);
  } finally {
    plain.fill(0);
  }
}

export async function combineShares(shares: Uint8Array[]): Promise<Uint8Array> {
  if (!Array.isArray(shares) || shares.length < MIN_THRESHOLD) {
    throw new FedsimError(
      ErrorCode.SECAGG_THRESHOLD,
      `combineShares needs at least ${MIN_THRESHOLD} shares (got ${Array.isArray(shares) ? shares.length : 0})`,
    );
  }
  if (shares.length > MAX_SHARES) {
    throw new FedsimError(ErrorCode.BAD_PAYLOAD, `at most ${MAX_SHARES} shares can be combined`);
  }
  const first = shares[0];
  const xs = new Set<number>();
  for (const share of shares) {
    if (!(share instanceof Uint8Array) || share.length < 2) {
      throw new FedsimError(ErrorCode.BAD_PAYLOAD, "each share must be a Uint8Array of at least 2 bytes");
    }
    if (share.length !== first.length) {
      throw new FedsimError(ErrorCode.BAD_PAYLOAD, "all shares must have the same length");
    }
    const x = share[share.length - 1];
    if (x === 0) throw new FedsimError(ErrorCode.BAD_PAYLOAD, "a share has x-coordinate 0");
    if (xs.has(x)) throw new FedsimError(ErrorCode.BAD_PAYLOAD, `two shares have the same x-coordinate ${x}`);
    xs.add(x);
  }
  const plain = shares.map((share) => new Uint8Array(share));
  try {
    return await combine(plain);
  } finally {
    for (const share of plain) share.fill(0);
  }
}
