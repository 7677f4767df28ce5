import { z } from "zod";

/**
 * What a pool's controller (pool-control.ts) needs from the clients it hosts, apart from how they
 * are hosted: one ClientNode per client, or the virtual clients of a pool session
 * (virtual-pool.ts). Its own module, so that neither of those imports the other.
 */

/** A hosted client: its scenario index and the id the coordinator knows it by. */
export const clientRefSchema = z.object({ index: z.number().int().nonnegative(), clientId: z.string() });
export type PoolClientRef = z.infer<typeof clientRefSchema>;

/**
 * The clients a pool hosts, however it hosts them: one ClientNode (socket) each, or the virtual
 * clients of one pool session (virtual-pool.ts).
 */
export interface HostedClients {
  /** Scenario indices, ascending. */
  indices(): Iterable<number>;
  isGone(index: number): boolean;
  isOffline(index: number): boolean;
  /** Takes clients offline; resolves once the coordinator can no longer reach them. */
  takeOffline(indices: readonly number[]): Promise<PoolClientRef[]>;
  /** Brings clients back; resolves once the coordinator has welcomed them again. */
  bringOnline(indices: readonly number[], timeoutMs: number): Promise<PoolClientRef[]>;
  /** Hosts exactly these clients from now on (pool sessions only); what was released and added. */
  setHosted?(indices: readonly number[]): Promise<{ released: PoolClientRef[]; added: PoolClientRef[] }>;
}
