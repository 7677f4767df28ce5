import { z } from "zod";
import {
  type Ack,
  bytesSchema,
  dpClientConfigSchema,
  envelopeWireSchema,
  fitConfigSchema,
  fitInstructionsSchema,
  type ModelDescriptor,
  modelDescriptorSchema,
  trainMetricsSchema,
  type WireWeights,
  wireWeightsSchema,
} from "./protocol.js";
import { FAILURE_REASONS, type FailureReason } from "./strategy/strategy.js";

/**
 * What crosses between the coordinator and its edges (docs/SCALE-OUT.md). Two channels:
 * - through Socket.IO's Redis adapter (`InterServerEvents`, serverSideEmit with acks): control
 *   only, never a vector: rosters and round plans;
 * - over each edge's direct Socket.IO link to the coordinator's `/edge` namespace: the round's
 *   weights, per-client outcomes (small, or one update each when the strategy needs them), and
 *   one partial sum per edge per round; under an asynchronous strategy also each fit request,
 *   to the one edge that holds the client; under secure aggregation also each SecAgg stage
 *   message for a client the edge holds, and one masked sum per edge per round.
 * Every payload from the other side is checked with these schemas: Redis and the link are
 * boundaries like any other.
 */

/** The coordinator's namespace for edge links. */
export const EDGE_NAMESPACE = "/edge";

const id = z.string().min(1).max(256);
const roundNumber = z.number().int().nonnegative();
/** A round plan's key: which fit request an outcome or sum answers. */
const roundKey = z.string().min(8).max(64);

/** How an edge hands its clients' updates on: one partial sum, each update as it is, or a masked sum. */
export type EdgeMode = "sum" | "forward";

export const edgeRosterSchema = z.object({
  edgeId: id,
  /** Clients connected to the edge now (real nodes and pool sessions' virtual clients). */
  clientIds: z.array(id).max(1_000_000),
});
export type EdgeRoster = z.infer<typeof edgeRosterSchema>;

export const edgeFitPlanSchema = z.object({
  round: roundNumber,
  key: roundKey,
  deadlineMs: z.number().int().positive(),
  config: fitConfigSchema,
  mode: z.enum(["sum", "forward"]),
  /** In "sum" mode: each update's weight in the sum (its example count, or 1 under uniform weights). */
  weighting: z.enum(["examples", "uniform"]),
  /** Which sampled clients each edge runs: a client is assigned to one edge only. */
  assignments: z.record(id, z.array(id).max(1_000_000)),
  /** Secure aggregation's encoding: the edge keeps each masked input for the round's masked sum. */
  secagg: fitInstructionsSchema.shape.secagg,
  /** Under DP: the settings each client gets in its fit (clip norm, its own noise, the clipped bit). */
  dp: dpClientConfigSchema.optional(),
  /** Central DP: the edge clips each accepted update to this L2 norm before it counts in the sum. */
  clipNorm: z.number().finite().positive().optional(),
  /**
   * Envelopes: the coordinator's round key (hex), which clients seal their updates to. The edge
   * cannot open them and relays each one over its link (`edgeSealed`).
   */
  envelopeKey: z
    .string()
    .regex(/^[0-9a-f]{64}$/)
    .optional(),
});
export type EdgeFitPlan = z.infer<typeof edgeFitPlanSchema>;

export const edgeFitReplySchema = z.object({
  edgeId: id,
  /** The assigned clients the edge holds and sent the request to. */
  started: z.array(id).max(1_000_000),
});
export type EdgeFitReply = z.infer<typeof edgeFitReplySchema>;

/**
 * Events between Socket.IO servers, through the Redis adapter. Every server answers every
 * request (the adapter waits for all of them): the coordinator, and an edge asked by another
 * server that is not a coordinator, answer null.
 */
export interface InterServerEvents {
  edgeRoster: (ack: (roster: EdgeRoster | null) => void) => void;
  edgeFit: (plan: EdgeFitPlan, ack: (reply: EdgeFitReply | null) => void) => void;
  /** An edge's clients changed: the coordinator refreshes its roster. */
  edgeRosterChanged: (edgeId: string) => void;
}

export const edgeHelloSchema = z.object({
  edgeId: id,
  /** The link token (`--edge-token`), when the coordinator requires one. */
  token: z.string().max(1024).optional(),
});
export type EdgeHello = z.infer<typeof edgeHelloSchema>;

export interface EdgeWelcome {
  model: ModelDescriptor;
  maxPayloadBytes: number;
}
export const edgeWelcomeSchema = z.object({
  model: modelDescriptorSchema,
  maxPayloadBytes: z.number().int().positive(),
});

export const edgeWeightsRequestSchema = z.object({ round: roundNumber, key: roundKey });
export interface EdgeRoundWeights {
  weights: WireWeights;
  frozen?: WireWeights;
}
export const edgeRoundWeightsSchema = z.object({
  weights: wireWeightsSchema,
  frozen: wireWeightsSchema.optional(),
});

const transferBytes = z.object({
  sent: z.number().int().nonnegative(),
  received: z.number().int().nonnegative(),
});

/** One client's outcome, as the edge's own validation left it (server/fit-validation.ts). */
export const edgeOutcomeSchema = z.discriminatedUnion("ok", [
  z.object({
    ok: z.literal(true),
    round: roundNumber,
    key: roundKey,
    clientId: id,
    numExamples: z.number().int().nonnegative().optional(),
    metrics: trainMetricsSchema.optional(),
    /** Adaptive clipping: the client's bit, which the coordinator counts as it does on its own. */
    clippedBit: z.union([z.literal(0), z.literal(1)]).optional(),
    /**
     * Only in "forward" mode: the client's delta (float32 bytes). In "sum" mode it stays at the
     * edge; under envelopes the coordinator already has it from `edgeSealed`.
     */
    delta: bytesSchema.optional(),
    bytes: transferBytes,
  }),
  z.object({
    ok: z.literal(false),
    round: roundNumber,
    key: roundKey,
    clientId: id,
    reason: z.enum(FAILURE_REASONS as [FailureReason, ...FailureReason[]]),
    code: z.string().max(64),
    message: z.string().max(2000),
    bytes: transferBytes.optional(),
  }),
]);
export type EdgeOutcome = z.infer<typeof edgeOutcomeSchema>;

export const edgeSumRequestSchema = z.object({
  round: roundNumber,
  key: roundKey,
  /** The clients whose updates the coordinator accepted: exactly these are summed. */
  clientIds: z.array(id).max(1_000_000),
});
export type EdgeSumRequest = z.infer<typeof edgeSumRequestSchema>;

export const edgePartialSumSchema = z.object({
  /** Σ wₖ·Δₖ, float32 bytes. */
  sum: bytesSchema,
  totalWeight: z.number().finite().nonnegative(),
  count: z.number().int().nonnegative(),
  /** Central DP: how many of the summed updates the edge clipped to the plan's clip norm. */
  clipped: z.number().int().nonnegative().optional(),
});
export type EdgePartialSum = z.infer<typeof edgePartialSumSchema>;

/** SecAgg stages a coordinator asks of an edge's client; the payload is the stage's wire message. */
export const SECAGG_STAGES = ["advertise", "share", "routed", "unmask"] as const;

export const edgeSecAggStageSchema = z.object({
  clientId: id,
  stage: z.enum(SECAGG_STAGES),
  /** The stage message in wire form (common/wire-json.ts); the client checks it with its schema. */
  payload: z.unknown(),
  /** How long the edge waits for its client (the coordinator's stage timeout: its round deadline). */
  timeoutMs: z.number().int().positive().max(2_147_483_647),
});
export type EdgeSecAggStage = z.infer<typeof edgeSecAggStageSchema>;

/** The client's own reply to a stage, in wire form, as the edge received it. */
export const edgeSecAggReplySchema = z.object({ reply: z.unknown() });
export type EdgeSecAggReply = z.infer<typeof edgeSecAggReplySchema>;

export const edgeMaskedSumSchema = z.object({
  /** Σ masked vectors mod 2^32 over exactly the clients named (uint32 bytes). */
  masked: bytesSchema,
  count: z.number().int().nonnegative(),
});
export type EdgeMaskedSum = z.infer<typeof edgeMaskedSumSchema>;

export const edgeCancelSchema = z.object({
  round: roundNumber,
  key: roundKey,
  clientId: id,
  reason: z.string(),
});
export type EdgeCancel = z.infer<typeof edgeCancelSchema>;

/**
 * One fit of an asynchronous strategy (FedBuff, FedAsync), over the link to the edge that holds
 * the client: fits start one by one across model versions, so there is no round plan to share.
 * `key` names this fit: the edge asks for the version's weights with it (once per version) and
 * tags the outcome with it, as `round` = the version trained on.
 */
export const edgeAsyncFitSchema = z.object({
  version: roundNumber,
  key: roundKey,
  clientId: id,
  deadlineMs: z.number().int().positive(),
  config: fitConfigSchema,
  /** Envelopes: the coordinator's key for this fit alone (fits span versions), as in a plan. */
  envelopeKey: edgeFitPlanSchema.shape.envelopeKey,
});
export type EdgeAsyncFit = z.infer<typeof edgeAsyncFitSchema>;
export const edgeAsyncFitReplySchema = z.object({ started: z.boolean() });

/**
 * A sealed update, relayed as the client sent it, for the coordinator to open and check; the edge
 * acks its client with the coordinator's answer. The edge vouches for who sent it: the key the
 * client proved at the handshake, and the training-set size it declared at hello.
 */
export const edgeSealedSchema = z.object({
  round: roundNumber,
  key: roundKey,
  clientId: id,
  signerPublicKey: bytesSchema,
  declaredExamples: z.number().int().nonnegative().optional(),
  envelope: envelopeWireSchema,
});
export type EdgeSealed = z.infer<typeof edgeSealedSchema>;

/** The link, edge → coordinator. */
export interface EdgeToCoordinatorEvents {
  edgeHello: (hello: EdgeHello, ack: (reply: Ack<EdgeWelcome>) => void) => void;
  edgeWeights: (request: { round: number; key: string }, ack: (reply: Ack<EdgeRoundWeights>) => void) => void;
  edgeOutcome: (outcome: EdgeOutcome) => void;
  edgeSealed: (sealed: EdgeSealed, ack: (reply: Ack) => void) => void;
}

/** The link, coordinator → edge. */
export interface CoordinatorToEdgeEvents {
  edgeSum: (request: EdgeSumRequest, ack: (reply: Ack<EdgePartialSum>) => void) => void;
  edgeSecAgg: (request: EdgeSecAggStage, ack: (reply: Ack<EdgeSecAggReply>) => void) => void;
  /** Under secure aggregation: Σ masked vectors mod 2^32 over exactly `request.clientIds`. */
  edgeMaskedSum: (request: EdgeSumRequest, ack: (reply: Ack<EdgeMaskedSum>) => void) => void;
  /** The round's plan again, on the link, for a linked edge whose answer through Redis did not come. */
  edgeFit: (plan: EdgeFitPlan, ack: (reply: EdgeFitReply | null) => void) => void;
  edgeCancel: (cancel: EdgeCancel) => void;
  /** Answered `started: false` when the edge does not hold the client (any more). */
  edgeAsyncFit: (fit: EdgeAsyncFit, ack: (reply: Ack<{ started: boolean }>) => void) => void;
}
