import type { Socket } from "socket.io-client";
import { describeConnectError, untrustedCertificate } from "../../common/connect-errors.js";
import {
  type CoordinatorToEdgeEvents,
  type EdgeFitPlan,
  type EdgeToCoordinatorEvents,
  type EdgeWelcome,
  edgeRoundWeightsSchema,
  edgeWelcomeSchema,
} from "../../common/edge-protocol.js";
import { describeError, ErrorCode, FedsimError } from "../../common/errors.js";
import { safeParseUntrusted } from "../../common/protocol.js";
import { bytesToFloat32, type FlatWeights } from "../../common/weights.js";
import type { FitRequest, SealedReply } from "../client-proxy.js";

/**
 * The edge's side of its direct link to the coordinator: the hello and welcome, fetching a
 * round's (or version's) weights, and relaying sealed updates. Every answer is checked with zod.
 */

export type Link = Socket<CoordinatorToEdgeEvents, EdgeToCoordinatorEvents>;

/** One model version's weights (and frozen tensors), as an edge fetches them over its link. */
export interface VersionWeights {
  weights: FlatWeights;
  frozen: FlatWeights | null;
}

/** How long an edge waits for the coordinator to answer on the link. */
export const LINK_TIMEOUT_MS = 60_000;

/** Until the weights arrive, a round holds a request with no weights; it is never sent. */
export function placeholderRequest(plan: EdgeFitPlan): FitRequest {
  return {
    round: plan.round,
    config: plan.config,
    weights: { specs: [], values: new Float32Array(0) },
    frozen: null,
  };
}

/**
 * Envelopes: the coordinator's round key on the request every client's proxy sends, with a relay
 * in place of the round secret key the edge does not have.
 */
export function withEnvelope(request: FitRequest, plan: EdgeFitPlan, link: Link): FitRequest {
  const { envelopeKey } = plan;
  return {
    ...request,
    ...(envelopeKey !== undefined
      ? {
          envelope: {
            publicKey: Uint8Array.from(Buffer.from(envelopeKey, "hex")),
            relay: (sealed: SealedReply) => relaySealed(link, plan, sealed),
          },
        }
      : {}),
  };
}

async function relaySealed(link: Link, plan: EdgeFitPlan, sealed: SealedReply): Promise<void> {
  let raw: unknown;
  try {
    raw = await link.timeout(LINK_TIMEOUT_MS).emitWithAck("edgeSealed", {
      round: plan.round,
      key: plan.key,
      clientId: sealed.clientId,
      signerPublicKey: sealed.signerPublicKey,
      ...(sealed.declaredExamples !== undefined ? { declaredExamples: sealed.declaredExamples } : {}),
      envelope: sealed.envelope,
    });
  } catch {
    throw new FedsimError(ErrorCode.EDGE_LOST, `the coordinator did not answer within ${LINK_TIMEOUT_MS} ms`);
  }
  if (raw && typeof raw === "object" && (raw as { ok?: unknown }).ok === true) return;
  const refusal = (raw ?? {}) as { code?: unknown; message?: unknown };
  const known = (Object.values(ErrorCode) as unknown[]).includes(refusal.code);
  throw new FedsimError(
    known ? (refusal.code as ErrorCode) : ErrorCode.INTERNAL,
    String(refusal.message ?? "the coordinator refused the sealed update").slice(0, 2000),
  );
}

export async function fetchRequest(link: Link, plan: EdgeFitPlan): Promise<FitRequest> {
  return {
    round: plan.round,
    config: plan.config,
    ...(await fetchWeights(link, plan.round, plan.key)),
    ...(plan.secagg ? { secagg: plan.secagg } : {}),
    ...(plan.dp ? { dp: plan.dp } : {}),
  };
}

/** A round's (or model version's) weights over the link, for the plan or fit named by `key`. */
export async function fetchWeights(link: Link, round: number, key: string): Promise<VersionWeights> {
  const raw = await link.timeout(LINK_TIMEOUT_MS).emitWithAck("edgeWeights", { round, key });
  if (raw && typeof raw === "object" && (raw as { ok?: unknown }).ok === false) {
    const refusal = raw as { code: ErrorCode; message: string };
    throw new FedsimError(refusal.code, refusal.message);
  }
  const parsed = safeParseUntrusted(edgeRoundWeightsSchema, raw);
  if (!parsed.success)
    throw new FedsimError(ErrorCode.BAD_PAYLOAD, "malformed round weights from the coordinator");
  const { weights, frozen } = parsed.data;
  return {
    weights: { specs: weights.specs, values: bytesToFloat32(weights.data) },
    frozen: frozen ? { specs: frozen.specs, values: bytesToFloat32(frozen.data) } : null,
  };
}

export function firstWelcome(
  link: Link,
  edgeId: string,
  token: string | undefined,
  coordinatorUrl: string,
  log: (line: string) => void,
) {
  return new Promise<EdgeWelcome>((resolve, reject) => {
    const onConnect = () => {
      hello(link, edgeId, token).then(
        (welcome) => {
          link.off("connect", onConnect);
          resolve(welcome);
        },
        (err) => {
          if (err instanceof FedsimError && err.code === ErrorCode.UNAUTHORIZED) {
            link.off("connect", onConnect);
            reject(err);
          } else log(`edge ${edgeId}: link hello failed (${describeError(err)}); retrying on reconnect`);
        },
      );
    };
    link.on("connect", onConnect);
    const onConnectError = (err: Error) => {
      // A certificate that does not verify will not verify on the next try either.
      const untrusted = untrustedCertificate(err, coordinatorUrl);
      if (untrusted) {
        link.off("connect", onConnect);
        link.off("connect_error", onConnectError);
        reject(untrusted);
      } else log(`edge ${edgeId}: cannot reach the coordinator yet (${describeConnectError(err)})`);
    };
    link.on("connect_error", onConnectError);
  });
}

export async function hello(link: Link, edgeId: string, token: string | undefined): Promise<EdgeWelcome> {
  const raw = await link
    .timeout(LINK_TIMEOUT_MS)
    .emitWithAck("edgeHello", { edgeId, ...(token !== undefined ? { token } : {}) });
  if (raw && typeof raw === "object" && (raw as { ok?: unknown }).ok === false) {
    const refusal = raw as { code: ErrorCode; message: string };
    throw new FedsimError(
      refusal.code === ErrorCode.UNAUTHORIZED ? ErrorCode.UNAUTHORIZED : refusal.code,
      refusal.message,
    );
  }
  const parsed = safeParseUntrusted(edgeWelcomeSchema, raw);
  if (!parsed.success)
    throw new FedsimError(ErrorCode.BAD_PAYLOAD, "malformed edge welcome from the coordinator");
  return parsed.data;
}
