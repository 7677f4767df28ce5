/**
 * The Socket.IO header of a fit result with binary attachments, on the main namespace: packet
 * type 5 (binary event), the attachment count, "-", an optional ack id, then the event. Its
 * attachments follow as separate frames, so when the header is in, the update's bytes are on the
 * way: the dashboard's "uploading". A reply without attachments has no such moment.
 */
const RESULT_HEADER = /^5\d+-\d*(\["(fitResult|poolFitResult)",.*)$/s;

/** Whose result is arriving: the socket's own client, or a pool session's virtual client by index. */
export type ResultHeader = { event: "fitResult" } | { event: "poolFitResult"; index: number };

/** The fit result whose header this engine.io packet carries, or null for any other packet. */
export function resultHeader(packet: { type: string; data?: unknown }): ResultHeader | null {
  if (packet.type !== "message" || typeof packet.data !== "string") return null;
  const match = RESULT_HEADER.exec(packet.data);
  if (!match) return null;
  if (match[2] === "fitResult") return { event: "fitResult" };
  // A pool names the virtual client inside the payload; the header is small (the delta's bytes
  // are placeholders), so parsing it costs little.
  try {
    const [, payload] = JSON.parse(match[1]) as [string, { index?: unknown }];
    const index = payload?.index;
    return Number.isInteger(index) && (index as number) >= 0
      ? { event: "poolFitResult", index: index as number }
      : null;
  } catch {
    return null;
  }
}
