import type { Socket } from "socket.io";
import { expect } from "vitest";
import { EDGE_NAMESPACE } from "../../common/edge-protocol.js";
import type { CoordinatorHandle } from "../../server/coordinator.js";

export interface LinkMessage {
  event: string;
  payload: Record<string, unknown>;
}

/**
 * Every message the coordinator receives on its edges' links (the `/edge` namespace), as it
 * arrives and before any handler: what the coordinator learns from its edges, and all an edge
 * passes on of its clients' updates.
 */
export function recordLinks(coordinator: CoordinatorHandle): LinkMessage[] {
  const received: LinkMessage[] = [];
  const listen = (socket: Socket) => {
    socket.prependAny((event: string, payload: unknown) => {
      received.push({
        event,
        payload: typeof payload === "object" && payload !== null ? (payload as Record<string, unknown>) : {},
      });
    });
  };
  const namespace = coordinator.sockets.io.of(EDGE_NAMESPACE);
  for (const socket of namespace.sockets.values()) listen(socket);
  namespace.on("connection", listen);
  return received;
}

/** The payloads of one event, e.g. every `edgeOutcome` an edge sent. */
export function payloadsOf(messages: readonly LinkMessage[], event: string): Record<string, unknown>[] {
  return messages.filter((m) => m.event === event).map((m) => m.payload);
}

/** Each `edgeSealed` payload is a relayed envelope and nothing else: no delta, no report. */
export function expectOnlyEnvelopes(sealed: readonly Record<string, unknown>[]): void {
  for (const payload of sealed) {
    expect(Object.keys(payload).sort()).toEqual(["clientId", "envelope", "key", "round", "signerPublicKey"]);
    expect(payload.envelope).toMatchObject({ round: payload.round, signature: expect.any(Uint8Array) });
  }
}
