import { z } from "zod";
import { MIN_TOKEN_CHARS } from "../common/crypto/auth.js";
import { MAX_TOKEN_CHARS } from "../common/protocol.js";

/**
 * `remotePools:` in a scenario: the run accepts `fedsim pool` processes on other hosts, which offer
 * their cores and host a share of the virtual clients in proportion to them (docs/SCALE-OUT.md).
 */
export const remotePoolsSchema = z
  .object({
    /** Where the coordinator listens, for pools and their workers alike. */
    host: z.string().min(1).default("0.0.0.0"),
    port: z.number().int().min(0).max(65_535).default(7070),
    /** Pools that must have joined before round 1 starts. */
    minPools: z.number().int().min(1).max(1000).default(1),
    /** The run id pools must name; default: a fresh one printed at start. */
    runId: z
      .string()
      .regex(/^[A-Za-z0-9._-]{1,128}$/, "letters, digits, '.', '_' and '-' only (1 to 128)")
      .optional(),
    /** Admission token for pools and their workers; default: a fresh one printed at start. */
    token: z.string().min(MIN_TOKEN_CHARS).max(MAX_TOKEN_CHARS).optional(),
    /** How long round 1 waits for `minPools`, and a later round for any pool when none is left. */
    waitSeconds: z.number().positive().max(86_400).default(600),
    /**
     * Coordinator edges (docs/SCALE-OUT.md): the coordinator joins this Redis, and pools may
     * point their workers at an edge (`fedsim pool --connect EDGE_URL`) instead of at it.
     */
    edges: z
      .object({
        redis: z.string().regex(/^rediss?:\/\//, "a redis:// or rediss:// URL"),
        edgeToken: z.string().min(MIN_TOKEN_CHARS).max(MAX_TOKEN_CHARS).optional(),
      })
      .strict()
      .optional(),
  })
  .strict();
export type RemotePools = z.infer<typeof remotePoolsSchema>;

/** The parts of a scenario remote pools cannot serve yet, one line each. */
export function remotePoolsProblems(
  s: {
    remotePools?: RemotePools | undefined;
    external?: unknown;
    availability?: unknown;
    heterogeneity?: { networkScale?: unknown[] | undefined } | undefined;
    privacy?: { envelope?: unknown; secagg?: unknown } | undefined;
  },
  source: string,
): string[] {
  if (!s.remotePools) return [];
  const where = `${source}: remotePools`;
  const problems: string[] = [];
  if (s.external !== undefined)
    problems.push(`${where}: cannot be combined with external (both choose where the coordinator listens)`);
  if (s.privacy?.envelope || s.privacy?.secagg) {
    problems.push(
      `${where}: cannot be combined with privacy.envelope or privacy.secagg (pool sessions hold no per-client keys)`,
    );
  }
  if (s.availability !== undefined || (s.heterogeneity?.networkScale?.length ?? 0) > 0) {
    problems.push(
      `${where}: cannot be combined with availability or heterogeneity.networkScale (remote pools take no scripted commands)`,
    );
  }
  return problems;
}
