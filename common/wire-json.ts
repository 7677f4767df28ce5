/**
 * Socket.IO's parser refuses packets with more than 10 binary attachments ("too many
 * attachments") and closes the connection. SecAgg stage messages carry a key or share per
 * neighbour, so they travel with every byte field as { $b64: "…" } instead; they are small.
 */
export function toWire(value: unknown): unknown {
  if (value instanceof Uint8Array)
    return { $b64: Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString("base64") };
  if (Array.isArray(value)) return value.map(toWire);
  if (value !== null && typeof value === "object") {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) setOwn(out, k, toWire(v));
    return out;
  }
  return value;
}

/** Inverse of toWire. Depth-limited so a hostile, deeply nested payload cannot blow the stack. */
export function fromWire(value: unknown, depth = 0): unknown {
  if (depth > 32) return null;
  if (Array.isArray(value)) return value.map((v) => fromWire(v, depth + 1));
  if (value !== null && typeof value === "object") {
    const record = value as Record<string, unknown>;
    const keys = Object.keys(record);
    if (keys.length === 1 && keys[0] === "$b64" && typeof record.$b64 === "string") {
      return new Uint8Array(Buffer.from(record.$b64, "base64"));
    }
    const out: Record<string, unknown> = {};
    for (const k of keys) setOwn(out, k, fromWire(record[k], depth + 1));
    return out;
  }
  return value;
}

/**
 * A plain `out[k] = v` with k === "__proto__" sets the object's prototype (to null, or to a
 * peer-chosen object) instead of adding the key JSON.parse produced.
 */
function setOwn(out: Record<string, unknown>, key: string, value: unknown): void {
  Object.defineProperty(out, key, { value, enumerable: true, writable: true, configurable: true });
}

/**
 * The bytes a wire-form value takes on the socket: Socket.IO sends a packet without binary
 * attachments as its JSON text. The virtual clock times SecAgg stages and evaluation replies by it.
 */
export function wireJsonBytes(value: unknown): number {
  return value === undefined ? 0 : Buffer.byteLength(JSON.stringify(value) ?? "");
}
