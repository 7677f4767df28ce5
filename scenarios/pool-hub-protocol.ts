import { z } from "zod";
import { type Ack, bytesSchema, MAX_TOKEN_CHARS } from "../common/protocol.js";
import { BACKEND_NAMES } from "./schema.js";

/**
 * The `/pools` namespace (docs/PROTOCOL.md §12, "Remote pools"): how `fedsim pool` on another
 * host offers its cores to a running `fedsim run`, and how the run tells it which virtual clients
 * to host. Only control messages travel here; the clients themselves train over ordinary pool
 * sessions on the main namespace.
 */
export const POOLS_NAMESPACE = "/pools";

/** C→S, first message: which run, with what credentials, and how many cores. */
export const poolHostJoinSchema = z
  .object({
    run: z.string().min(1).max(128),
    token: z.string().min(1).max(MAX_TOKEN_CHARS),
    /** Worker processes the host will start, one per core offered. */
    cores: z.number().int().min(1).max(256),
    /** A name for logs (the host name by default). */
    name: z.string().max(128).default(""),
  })
  .strict();
export type PoolHostJoin = z.input<typeof poolHostJoinSchema>;

export const moduleFingerprintSchema = z.object({
  file: z.string().max(1024),
  sha256: z.string().regex(/^[0-9a-f]{64}$/),
});
export type ModuleFingerprint = z.infer<typeof moduleFingerprintSchema>;

/** The join's answer: the pool's id and what its workers need to host the run's clients. */
export const poolHostWelcomeSchema = z.object({
  poolId: z.string().min(1).max(64),
  /** The pool's address as the coordinator sees it (behind NAT, not the host's own). */
  address: z.string().max(256),
  /** The scenario as the run parsed it; the host checks it with the scenario schema. */
  scenario: z.unknown(),
  backend: z.enum(BACKEND_NAMES),
  /**
   * The files that define the scenario's client or dataset in the run, by name and content: the
   * host imports only files its operator names (`fedsim pool --register`), and only if each of
   * these has a match by SHA-256 among them.
   */
  modules: z.array(moduleFingerprintSchema).max(64).default([]),
});
export type PoolHostWelcome = z.infer<typeof poolHostWelcomeSchema>;

/** S→C: host exactly these client indices (little-endian int32s) from round `round` on. */
export const poolAssignSchema = z.object({
  round: z.number().int().nonnegative(),
  indices: bytesSchema,
});
export type PoolAssign = z.infer<typeof poolAssignSchema>;

export interface PoolHubToHostEvents {
  assign: (message: PoolAssign, ack: (reply: Ack<{ hosted: number }>) => void) => void;
  /** The run is over: stop the workers and exit. */
  shutdown: (info: { reason: string }) => void;
}

export interface PoolHostToHubEvents {
  join: (message: PoolHostJoin, ack: (reply: Ack<PoolHostWelcome>) => void) => void;
  /** Every worker process is connected and waits for clients to host. */
  ready: (ack: (reply: Ack) => void) => void;
}
