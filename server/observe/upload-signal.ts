/**
 * The Socket.IO header of a `fitResult` with binary attachments, on the main namespace: packet
 * type 5 (binary event), the attachment count, "-", an optional ack id, then the event name.
 * Its attachments follow as separate frames, so when the header is in, the update's bytes are
 * on the way: the dashboard's "uploading". A reply without attachments has no such moment.
 */
const FIT_RESULT_HEADER = /^5\d+-\d*\["fitResult"/;

/** True for the engine.io packet that carries a fitResult's header (see FIT_RESULT_HEADER). */
export function isFitResultHeader(packet: { type: string; data?: unknown }): boolean {
  return packet.type === "message" && typeof packet.data === "string" && FIT_RESULT_HEADER.test(packet.data);
}
