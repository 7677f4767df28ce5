import {
  type MaskedInputMessage,
  neighbourKeysSchema,
  parseMessage,
  type RoutedSharesMessage,
  routedSharesSchema,
  SecAggClientSession,
  unmaskRequestSchema,
} from "../common/crypto/secagg/index.js";
import { ErrorCode, FedsimError } from "../common/errors.js";

const stageRoundSchema = (payload: unknown): number => {
  const round = (payload as { round?: unknown } | null)?.round;
  if (typeof round !== "number" || !Number.isInteger(round) || round < 0) {
    throw new FedsimError(ErrorCode.BAD_PAYLOAD, "secagg stage without a valid round");
  }
  return round;
};

/**
 * The client side of secure aggregation across Socket.IO stages: one SecAggClientSession per
 * round, kept between the key stages and the masked input, closed when a newer round starts.
 */
export class ClientSecAgg {
  private session: SecAggClientSession | null = null;
  private routed: RoutedSharesMessage | null = null;

  async handle(clientId: string, stage: string, payload: unknown): Promise<unknown> {
    const round = stageRoundSchema(payload);
    switch (stage) {
      case "advertise":
        this.session?.close();
        this.session = new SecAggClientSession({ clientId, round });
        this.routed = null;
        return this.session.advertiseKeys();
      case "share":
        return this.current(round).shareKeys(parseMessage(neighbourKeysSchema, payload, "neighbourKeys"));
      case "routed":
        this.current(round);
        this.routed = parseMessage(routedSharesSchema, payload, "routedShares");
        return {};
      case "unmask":
        return this.current(round).unmask(parseMessage(unmaskRequestSchema, payload, "unmaskRequest"));
      default:
        throw new FedsimError(ErrorCode.SECAGG_PROTOCOL, `unknown secagg stage "${stage}"`);
    }
  }

  mask(round: number, input: Uint32Array): MaskedInputMessage {
    const session = this.current(round);
    if (!this.routed)
      throw new FedsimError(ErrorCode.SECAGG_PROTOCOL, "masked input requested before shares were routed");
    return session.maskedInput(this.routed, input);
  }

  private current(round: number): SecAggClientSession {
    if (!this.session || this.session.round !== round) {
      throw new FedsimError(ErrorCode.STALE_ROUND, `no secure aggregation session for round ${round}`);
    }
    return this.session;
  }
}
