import { z } from "zod";
import type { ErrorCode } from "./errors.js";
import type {
  PoolCancel,
  PoolEvaluate,
  PoolFit,
  PoolFitError,
  PoolFitResult,
  PoolIndicesMessage,
  PoolLeaveMessage,
  PoolWeights,
} from "./pool-protocol.js";
import type { FitConfig } from "./strategy/strategy.js";

/**
 * The wire protocol between coordinator and client nodes (docs/PROTOCOL.md is the normative
 * description). Event maps are interfaces of function signatures so that Socket.IO's generics
 * reject a wrong payload at compile time; zod schemas check the same payloads at run time,
 * because the other end may be a different implementation or a hostile one.
 */
export const PROTOCOL_VERSION = 1;

// Typed as plain Uint8Array (any backing buffer): Node Buffers and views both qualify.
export const bytesSchema = z.custom<Uint8Array>((v) => v instanceof Uint8Array, {
  message: "expected binary data",
});
const bytes = bytesSchema;
const finiteNumber = z.number().finite();

export const tensorSpecSchema = z.object({
  name: z.string().min(1).max(256),
  shape: z.array(z.number().int().nonnegative()).max(8),
});

/** Weights on the wire: tensor specs plus the raw little-endian float32 bytes. */
export const wireWeightsSchema = z.object({
  specs: z.array(tensorSpecSchema).max(10_000),
  data: bytes,
});
export type WireWeights = z.infer<typeof wireWeightsSchema>;

/** The longest admission token a hello can carry; a coordinator refuses to start with a longer one. */
export const MAX_TOKEN_CHARS = 1024;

export const helloSchema = z.object({
  protocolVersion: z.number().int(),
  /** Base64 ed25519 public key, when the client has an identity. */
  publicKey: z.string().max(100).optional(),
  token: z.string().max(MAX_TOKEN_CHARS).optional(),
  /** A human label for logs only; never used as identity. */
  label: z.string().max(128).optional(),
  capabilities: z.object({ envelope: z.boolean(), secagg: z.boolean() }).optional(),
  /**
   * Size of the client's training set, when it chooses to say: no numExamples it reports later may
   * exceed it. Optional because it tells the coordinator (and, without TLS, the network) the size
   * even in rounds whose updates hide it (docs/PRIVACY.md).
   */
  numExamples: z.number().int().positive().max(Number.MAX_SAFE_INTEGER).optional(),
  /** Opens a pool session (§12) instead of admitting one client; needs a proven key. */
  pool: z.boolean().optional(),
});
export type Hello = z.infer<typeof helloSchema>;

export const proveSchema = z.object({ signature: bytes });
export type Prove = z.infer<typeof proveSchema>;

export const modelDescriptorSchema = z.object({
  /** tfjs `model.toJSON()` topology, so clients can rebuild any model, including loaded ones. */
  topology: z.unknown(),
  specs: z.array(tensorSpecSchema),
});
export type ModelDescriptor = z.infer<typeof modelDescriptorSchema>;

/** Exactly the keys of the strategies' `FitConfig`: a missing or extra key does not compile. */
const fitConfigShape = {
  epochs: z.number().int().positive().max(10_000),
  batchSize: z.number().int().positive().max(100_000),
  learningRate: finiteNumber.positive(),
  proximalMu: finiteNumber.nonnegative().optional(),
  maxSteps: z.number().int().positive().optional(),
} satisfies Record<keyof FitConfig, z.ZodType>;
export const fitConfigSchema = z.object(fitConfigShape) satisfies z.ZodType<FitConfig>;

export const dpClientConfigSchema = z.object({
  clipNorm: finiteNumber.positive(),
  /** Std of the Gaussian noise the client adds itself (0 for central DP). */
  noiseStd: finiteNumber.nonnegative(),
  /** Adaptive clipping: report whether the update norm was ≤ clipNorm. */
  reportClippedBit: z.boolean(),
});
export type DpClientConfig = z.infer<typeof dpClientConfigSchema>;

export const fitInstructionsSchema = z.object({
  round: z.number().int().nonnegative(),
  nonce: z.string().min(8).max(64),
  deadlineMs: z.number().int().positive(),
  config: fitConfigSchema,
  /** The global values of the tensors that train (all tensors when nothing is frozen). */
  weights: wireWeightsSchema,
  /** Frozen tensors, sent only the first time a connection needs them. */
  frozen: wireWeightsSchema.optional(),
  dp: dpClientConfigSchema.optional(),
  /** Per-round ephemeral nacl.box public key: when present, the update must be sealed to it. */
  envelopeKey: bytes.optional(),
  /** When present, the update goes through secure aggregation instead of fitResult. */
  secagg: z
    .object({
      /** Each coordinate of the update is clamped to ±clipRange before weighting. */
      clipRange: finiteNumber.positive(),
      /** Fixed-point scale for quantisation mod 2^32 (chosen by the coordinator so sums never wrap). */
      scale: finiteNumber.positive(),
      /** Weight the update by the example count (capped at maxWeight); else every client weighs 1. */
      weighted: z.boolean(),
      maxWeight: finiteNumber.positive(),
    })
    .optional(),
});
export type FitInstructions = z.infer<typeof fitInstructionsSchema>;

/** The most custom metrics one report may carry, so a report stays small. */
export const MAX_CUSTOM_METRICS = 32;

/** Metrics a client's own logic reports (defineClient), by name; the strategy aggregates them. */
export const customMetricsSchema = z
  .record(
    z.string().regex(/^[A-Za-z0-9_.:-]{1,64}$/, "metric names are 1–64 letters, digits, _ . : -"),
    finiteNumber,
  )
  .refine((m) => Object.keys(m).length <= MAX_CUSTOM_METRICS, `at most ${MAX_CUSTOM_METRICS} custom metrics`);

export const trainMetricsSchema = z.object({
  loss: finiteNumber,
  accuracy: finiteNumber,
  steps: z.number().int().nonnegative(),
  epochsCompleted: finiteNumber.nonnegative(),
  seconds: finiteNumber.nonnegative(),
  custom: customMetricsSchema.optional(),
});
export type TrainMetrics = z.infer<typeof trainMetricsSchema>;

/**
 * A client's update in the clear: delta = local − global over the trainable tensors.
 * `numExamples` and `metrics` travel only in unprotected rounds (no `dp`, no `secagg`): under DP
 * or SecAgg they would reveal what the protection hides, so the client leaves them out and the
 * coordinator refuses an update that carries them (PRIVACY_VIOLATION; docs/PRIVACY.md).
 */
export const plainUpdateSchema = z.object({
  numExamples: z.number().int().positive().optional(),
  delta: wireWeightsSchema,
  metrics: trainMetricsSchema.optional(),
  /** Adaptive clipping's bit: 1 when the unclipped norm was ≤ the clip norm. */
  clippedBit: z.union([z.literal(0), z.literal(1)]).optional(),
});
export type PlainUpdate = z.infer<typeof plainUpdateSchema>;

/** 4 GiB of envelope chunks at the reference client's chunk size; Socket.IO's message limit binds long before. */
export const MAX_ENVELOPE_CHUNKS = 16_384;

/** A sealed update (common/crypto/envelope.ts checks it in full when it opens it). */
export const envelopeWireSchema = z.object({
  /** The envelope format, 2. Absent in format 1, which is parsed only to be refused by name. */
  version: z.number().int().optional(),
  round: z.number().int().nonnegative(),
  nonce: bytes,
  senderBoxPublicKey: bytes,
  chunks: z.array(bytes).max(MAX_ENVELOPE_CHUNKS).optional(),
  /** Format 1's single nacl.box. */
  ciphertext: bytes.optional(),
  signature: bytes,
});

export const fitResultSchema = z.object({
  round: z.number().int().nonnegative(),
  nonce: z.string().min(8).max(64),
  /** Exactly one of `update` (plain) or `envelope` (sealed PlainUpdate). */
  update: plainUpdateSchema.optional(),
  envelope: envelopeWireSchema.optional(),
  /** Under secure aggregation: the masked, quantised [w·Δ, w] vector, and nothing else. */
  secagg: z
    .object({
      masked: z.object({
        round: z.number().int().nonnegative(),
        clientId: z.string().max(256),
        masked: bytesSchema,
      }),
      /** Never allowed: parsed only so that a client that sends it is refused (PRIVACY_VIOLATION). */
      metrics: trainMetricsSchema.optional(),
    })
    .optional(),
});
export type FitResultMessage = z.infer<typeof fitResultSchema>;

export const fitErrorSchema = z.object({
  round: z.number().int().nonnegative(),
  nonce: z.string().min(8).max(64),
  code: z.string().max(64),
  message: z.string().max(2000),
});
export type FitErrorMessage = z.infer<typeof fitErrorSchema>;

export type Ack<T extends object = object> =
  | ({ ok: true } & T)
  | { ok: false; code: ErrorCode; message: string };

export interface Welcome {
  clientId: string;
  protocolVersion: number;
  model: ModelDescriptor;
  /** The coordinator's Socket.IO maxHttpBufferSize, so clients refuse oversized sends themselves. */
  maxPayloadBytes: number;
  /**
   * Set when the coordinator wants a signature over this challenge first. Such a reply carries
   * no model (empty topology and specs) and no client id; the real Welcome is `prove`'s ack.
   */
  challenge?: Uint8Array;
}

/** Federated evaluation: score the global model on the client's own held-out data. */
export const evaluateInstructionsSchema = z.object({
  round: z.number().int().nonnegative(),
  /** Global values of the trainable tensors. */
  weights: wireWeightsSchema,
  /** Frozen tensors, sent only to a client that does not have them yet. */
  frozen: wireWeightsSchema.optional(),
});
export type EvaluateInstructions = z.infer<typeof evaluateInstructionsSchema>;

export const evaluateReplySchema = z.object({
  ok: z.literal(true),
  numExamples: z.number().int().nonnegative(),
  loss: finiteNumber.nonnegative(),
  accuracy: finiteNumber.min(0).max(1),
  metrics: customMetricsSchema.optional(),
});
export type EvaluateReply = Omit<z.infer<typeof evaluateReplySchema>, "ok">;

export interface ServerToClientEvents {
  fit: (ins: FitInstructions) => void;
  evaluate: (ins: EvaluateInstructions, ack: (reply: Ack<EvaluateReply>) => void) => void;
  /** SecAgg stages; payloads are validated by common/crypto/secagg schemas. */
  secagg: (stage: string, payload: unknown, ack: (reply: unknown) => void) => void;
  /** The coordinator cancels a pending fit (round ended or timed out). */
  cancel: (info: { round: number; nonce: string; reason: string }) => void;
  shutdown: (info: { reason: string }) => void;
  /** Pool sessions (common/pool-protocol.ts). */
  poolWeights: (weights: PoolWeights) => void;
  poolFit: (fit: PoolFit) => void;
  poolEvaluate: (ins: PoolEvaluate, ack: (reply: Ack<EvaluateReply>) => void) => void;
  poolCancel: (info: PoolCancel) => void;
}

export interface ClientToServerEvents {
  hello: (hello: Hello, ack: (reply: Ack<Welcome>) => void) => void;
  /** The Welcome (with the model) comes only after the signature verifies. */
  prove: (prove: Prove, ack: (reply: Ack<Welcome>) => void) => void;
  fitResult: (result: FitResultMessage, ack: (reply: Ack) => void) => void;
  fitError: (error: FitErrorMessage) => void;
  /** Pool sessions: virtual clients come online and go offline; the ack counts the session's online ones. */
  poolJoin: (message: PoolIndicesMessage, ack: (reply: Ack<{ online: number }>) => void) => void;
  poolLeave: (message: PoolLeaveMessage, ack: (reply: Ack<{ online: number }>) => void) => void;
  poolFitResult: (result: PoolFitResult, ack: (reply: Ack) => void) => void;
  poolFitError: (error: PoolFitError) => void;
}

/** Between Socket.IO servers (a coordinator and its edges), through the Redis adapter. */
export type { InterServerEvents } from "./edge-protocol.js";

export interface SocketData {
  clientId?: string;
  authenticated: boolean;
  /** Set once a pool session is admitted: the socket speaks for virtual clients, not for itself. */
  pool?: boolean;
}

/**
 * `schema.safeParse` for values from outside (a peer's message, a file). zod 4 runs length checks
 * (min/max) even after a type mismatch, so a JSON object such as {"length":{"toString":0}} makes
 * the comparison throw a TypeError out of safeParse; here any throw is a failed parse like any
 * other malformed input.
 */
export function safeParseUntrusted<T extends z.ZodType>(
  schema: T,
  value: unknown,
): z.ZodSafeParseResult<z.output<T>> {
  try {
    return schema.safeParse(value);
  } catch (err) {
    const reason = err instanceof Error ? err.message : "parse failed";
    return {
      success: false,
      error: new z.ZodError([
        { code: "custom", path: [], message: `unreadable value (${reason})`, input: undefined },
      ]) as z.ZodError<z.output<T>>,
    };
  }
}

/** One line per issue, naming the field path: what the CLI and acks print for zod failures. */
export function formatZodIssues(error: z.ZodError, prefix = ""): string[] {
  return error.issues.map((issue) => {
    const path = issue.path.map(String).join(".");
    return `${prefix}${path || "(root)"}: ${issue.message}`;
  });
}
