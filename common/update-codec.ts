import { ErrorCode, FedsimError } from "./errors.js";
import { type PlainUpdate, plainUpdateSchema, safeParseUntrusted } from "./protocol.js";

/**
 * One self-describing byte string for a PlainUpdate, used as the plaintext of an envelope:
 * [u32 LE header length][UTF-8 JSON header][zero padding to 4 bytes][float32 delta bytes].
 * The header holds everything but the big vector, so nothing numeric travels as JSON arrays.
 */
export function encodePlainUpdate(update: PlainUpdate): Uint8Array {
  const { delta, ...rest } = update;
  const header = new TextEncoder().encode(JSON.stringify({ ...rest, specs: delta.specs }));
  const headerEnd = 4 + header.byteLength;
  const dataStart = Math.ceil(headerEnd / 4) * 4;
  const out = new Uint8Array(dataStart + delta.data.byteLength);
  new DataView(out.buffer).setUint32(0, header.byteLength, true);
  out.set(header, 4);
  out.set(delta.data, dataStart);
  return out;
}

export function decodePlainUpdate(bytes: Uint8Array): PlainUpdate {
  if (bytes.byteLength < 4) throw new FedsimError(ErrorCode.BAD_PAYLOAD, "update too short");
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLength = view.getUint32(0, true);
  if (headerLength > 1_000_000 || 4 + headerLength > bytes.byteLength) {
    throw new FedsimError(ErrorCode.BAD_PAYLOAD, `bad update header length ${headerLength}`);
  }
  let header: unknown;
  try {
    header = JSON.parse(new TextDecoder().decode(bytes.subarray(4, 4 + headerLength)));
  } catch {
    throw new FedsimError(ErrorCode.BAD_PAYLOAD, "update header is not JSON");
  }
  const dataStart = Math.ceil((4 + headerLength) / 4) * 4;
  const { specs, ...rest } = (header ?? {}) as Record<string, unknown>;
  const parsed = safeParseUntrusted(plainUpdateSchema, {
    ...rest,
    delta: { specs, data: bytes.subarray(dataStart) },
  });
  if (!parsed.success) {
    throw new FedsimError(
      ErrorCode.BAD_PAYLOAD,
      `malformed update: ${parsed.error.issues[0]?.message ?? "invalid"}`,
    );
  }
  return parsed.data;
}
