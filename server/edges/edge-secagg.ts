import type { Socket } from "socket.io-client";
import { vectorToBytes } from "../../common/crypto/secagg/messages.js";
import {
  type CoordinatorToEdgeEvents,
  type EdgeToCoordinatorEvents,
  edgeSecAggStageSchema,
  edgeSumRequestSchema,
} from "../../common/edge-protocol.js";
import { describeError, ErrorCode, FedsimError } from "../../common/errors.js";
import { formatZodIssues, safeParseUntrusted } from "../../common/protocol.js";
import type { ClientProxy } from "../client-proxy.js";
import type { EdgeRound } from "./edge-round.js";

type Link = Socket<CoordinatorToEdgeEvents, EdgeToCoordinatorEvents>;

export interface EdgeSecAggContext {
  /** A client this edge holds now, by id. */
  client(clientId: string): ClientProxy | undefined;
  /** The round the coordinator's plan started here, if any. */
  round(): EdgeRound | null;
  log: (line: string) => void;
}

/**
 * An edge's part in secure aggregation (docs/SCALE-OUT.md). The coordinator runs the protocol; the
 * edge passes each stage message to the client it holds and the client's reply back, and answers
 * the round's masked sum over the clients the coordinator names. What it handles is what a
 * coordinator would: public keys, shares sealed to other clients, masked vectors; never an input.
 */
export function answerSecAgg(link: Link, context: EdgeSecAggContext): void {
  link.on("edgeSecAgg", (raw, ack) => {
    const reply = typeof ack === "function" ? ack : () => {};
    const parsed = safeParseUntrusted(edgeSecAggStageSchema, raw);
    if (!parsed.success) {
      return reply(
        refusal(ErrorCode.BAD_PAYLOAD, `malformed edgeSecAgg: ${formatZodIssues(parsed.error).join("; ")}`),
      );
    }
    const { clientId, stage, payload, timeoutMs } = parsed.data;
    const client = context.client(clientId);
    if (!client?.secagg) {
      return reply(refusal(ErrorCode.CLIENT_DISCONNECTED, `${clientId} is not connected to this edge`));
    }
    client.secagg(stage, payload, timeoutMs).then(
      (answer) => reply({ ok: true, reply: answer }),
      (err) => {
        // Socket.IO's own ack timeout is a plain Error; the coordinator reads it as a timeout.
        const timedOut = !(err instanceof FedsimError) && /timed out/i.test(describeError(err));
        const code =
          err instanceof FedsimError
            ? err.code
            : timedOut
              ? ErrorCode.CLIENT_TIMEOUT
              : ErrorCode.SECAGG_PROTOCOL;
        reply(refusal(code, `${clientId}: ${describeError(err)}`));
      },
    );
  });

  link.on("edgeMaskedSum", (raw, ack) => {
    const reply = typeof ack === "function" ? ack : () => {};
    const parsed = safeParseUntrusted(edgeSumRequestSchema, raw);
    if (!parsed.success) return reply(refusal(ErrorCode.BAD_PAYLOAD, "malformed edgeMaskedSum"));
    const round = context.round();
    if (!round || round.key !== parsed.data.key) {
      return reply(
        refusal(ErrorCode.STALE_ROUND, `round ${parsed.data.round} is not this edge's current round`),
      );
    }
    try {
      const sum = round.maskedSum(parsed.data.clientIds);
      context.log(`round ${parsed.data.round}: masked sum of ${parsed.data.clientIds.length} inputs sent`);
      reply({ ok: true, masked: vectorToBytes(sum), count: parsed.data.clientIds.length });
    } catch (err) {
      reply(refusal(err instanceof FedsimError ? err.code : ErrorCode.INTERNAL, describeError(err)));
    }
  });
}

function refusal(code: string, message: string): { ok: false; code: ErrorCode; message: string } {
  return { ok: false, code: code as ErrorCode, message: message.slice(0, 2000) };
}
