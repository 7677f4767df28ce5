import { ErrorCode, FedsimError } from "../errors.js";

/**
 * Server optimiser state (momentum, Adam moments) travels in checkpoints as base64 of the exact
 * Float32Array bytes: 1.66M parameters are 8.9 MB of base64 instead of ~30 MB of JSON numbers,
 * and the round trip is bit-exact, so a resumed run continues identically.
 */
export function encodeFloat32(values: Float32Array): string {
  return Buffer.from(values.buffer, values.byteOffset, values.byteLength).toString("base64");
}

/** Decodes `encodeFloat32` output; `field` names the state field in the error. */
export function decodeFloat32(text: unknown, field: string): Float32Array {
  if (typeof text !== "string") {
    throw new FedsimError(ErrorCode.CHECKPOINT, `strategy state: ${field} must be a base64 string`);
  }
  const bytes = Buffer.from(text, "base64");
  if (bytes.byteLength % 4 !== 0) {
    throw new FedsimError(
      ErrorCode.CHECKPOINT,
      `strategy state: ${field} has ${bytes.byteLength} bytes, not a whole number of float32 values`,
    );
  }
  // Copy into a fresh, aligned buffer: Buffer.from may return a slice of a shared pool.
  const values = new Float32Array(bytes.byteLength / 4);
  new Uint8Array(values.buffer).set(bytes);
  return values;
}

/** The object form every strategy state takes; anything else is a corrupt checkpoint. */
export function stateObject(state: unknown, strategy: string): Record<string, unknown> {
  if (typeof state !== "object" || state === null || Array.isArray(state)) {
    throw new FedsimError(ErrorCode.CHECKPOINT, `strategy state for ${strategy} must be an object`);
  }
  return state as Record<string, unknown>;
}
