import { clientIdOf } from "../../common/crypto/identity.js";
import type { EdgeSealed } from "../../common/edge-protocol.js";
import { ErrorCode, FedsimError } from "../../common/errors.js";
import type { ClientLimits } from "../client-limits.js";
import type { FitRequest, FitSuccess } from "../client-proxy.js";
import { acceptFit, openSealedUpdate } from "../fit-validation.js";

/** The fit nonce is the edge's business (it matched the reply to its request); the envelope has its own. */
const RELAYED = "relayed-by-edge";

/**
 * The coordinator's side of envelopes over edges. An edge cannot open a sealed update (the round
 * key stays here), so it relays each one as its client sent it; this opens it with the round's
 * opener and runs the same checks a client's own socket gets (server/socket-proxy.ts): the
 * envelope's format, round, replay, signature and chunks, then shapes, limits and what the round
 * lets a client report. An accepted update waits here for the edge's outcome, which finishes the
 * client's fit; a refused one is answered with its code, which the edge passes on to its client.
 */
export class SealedInbox {
  private round: { key: string; opened: Map<string, Omit<FitSuccess, "bytes">> } | null = null;

  constructor(private readonly limits: ClientLimits) {}

  /** A new round's plan: sealed updates of any earlier round are dropped. */
  begin(key: string): void {
    this.round = { key, opened: new Map() };
  }

  /** Opens and checks a relayed update of the current round; throws the code to refuse it with. */
  async open(sealed: EdgeSealed, request: FitRequest): Promise<void> {
    const round = this.round;
    if (!round || round.key !== sealed.key || request.round !== sealed.round) {
      throw new FedsimError(ErrorCode.STALE_ROUND, `round ${sealed.round} is not running`);
    }
    if (round.opened.has(sealed.clientId)) {
      throw new FedsimError(ErrorCode.DUPLICATE, `an update from ${sealed.clientId} was already accepted`);
    }
    const accepted = await openRelayed(sealed, request, this.limits);
    if (this.round !== round) throw new FedsimError(ErrorCode.STALE_ROUND, "the round ended meanwhile");
    round.opened.set(sealed.clientId, accepted);
  }

  /** The accepted update of a client whose edge now reports success, once. */
  take(key: string, clientId: string): Omit<FitSuccess, "bytes"> | undefined {
    if (this.round?.key !== key) return undefined;
    const accepted = this.round.opened.get(clientId);
    this.round.opened.delete(clientId);
    return accepted;
  }
}

/**
 * Opens one relayed sealed update with the request's opener and runs a client socket's checks on
 * it (format, round, replay, signature, chunks, shapes, limits, what the request lets a client
 * report); throws the code to refuse it with. Rounds and asynchronous fits both open through here.
 */
export async function openRelayed(
  sealed: EdgeSealed,
  request: FitRequest,
  limits: ClientLimits,
): Promise<Omit<FitSuccess, "bytes">> {
  // The edge vouches for the key its client proved; the id the coordinator knows must be that key's.
  if (sealed.signerPublicKey.length !== 32 || clientIdOf(sealed.signerPublicKey) !== sealed.clientId) {
    throw new FedsimError(ErrorCode.UNAUTHORIZED, `the relayed signer key is not ${sealed.clientId}'s`);
  }
  const message = { round: sealed.round, nonce: RELAYED, envelope: sealed.envelope };
  const plain = await openSealedUpdate(message, request, sealed.signerPublicKey);
  return acceptFit(
    sealed.clientId,
    message,
    request,
    { limits, declaredExamples: sealed.declaredExamples },
    plain,
  );
}
