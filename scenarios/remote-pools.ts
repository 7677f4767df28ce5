import { randomBytes } from "node:crypto";
import os from "node:os";
import { describeError, ErrorCode, FedsimError } from "../common/errors.js";
import type { CoordinatorHandle } from "../server/coordinator.js";
import { moduleFingerprint, runPoolHost } from "./pool-host.js";
import { PoolHub, type PoolHubEvent } from "./pool-hub.js";
import type { RemotePools } from "./remote-pools-schema.js";
import type { Scenario } from "./schema.js";

/** What a run with remote pools reports: where pools join, then the hub's events. */
export type RunPoolEvent =
  | { type: "listening"; url: string; runId: string; token: string; command: string }
  | PoolHubEvent;

export interface RemotePoolsRun {
  hub: PoolHub;
  runId: string;
  /** Stops the local pool host, if any, and tells every pool the run is over. */
  close(): Promise<void>;
}

/** The run id and token pools must present: the scenario's, or fresh ones. */
export function remotePoolCredentials(
  remote: RemotePools,
  token: string | undefined,
): { runId: string; token: string } {
  return {
    runId: remote.runId ?? `run-${randomBytes(4).toString("hex")}`,
    token: remote.token ?? token ?? randomBytes(16).toString("hex"),
  };
}

/**
 * Opens a run to pools on other hosts (`fedsim pool`): the hub on the coordinator's server, the
 * line to type on each host, and, when `localCores` > 0, one more pool host in this process that
 * offers this host's cores like any other.
 */
export function openRemotePools(
  coordinator: CoordinatorHandle,
  scenario: Scenario,
  remote: RemotePools,
  credentials: { runId: string; token: string },
  options: {
    backend: Scenario["backend"];
    /** The files that define the scenario's client or dataset (RunOptions.modules). */
    modules: readonly string[];
    localCores: number;
    interactive: boolean;
    log: (line: string) => void;
    onEvent?: (event: RunPoolEvent) => void;
  },
): RemotePoolsRun {
  const { runId, token } = credentials;
  const { log, modules } = options;
  const hub = new PoolHub({
    io: coordinator.sockets.io,
    scenario,
    backend: options.backend,
    runId,
    token,
    minPools: remote.minPools,
    waitMs: remote.waitSeconds * 1000,
    modules: modules.map(moduleFingerprint),
    log,
    ...(options.onEvent ? { onEvent: options.onEvent } : {}),
  });
  const host = remote.host === "0.0.0.0" ? os.hostname() : remote.host;
  const url = `http://${host}:${coordinator.port}`;
  // The paths as on this host: where the other hosts keep the same files at the same paths, the line works as printed.
  const register = modules.map((m) => ` --register ${m}`).join("");
  const command = `fedsim pool --server ${url} --run ${runId} --token ${token}${register}`;
  const lines = [
    `pools: run ${runId} waits for ${remote.minPools} pool(s) before round 1; on each host run:`,
    `  ${command}`,
  ];
  for (const line of lines) {
    if (options.interactive) process.stdout.write(`${line}\n`);
    else log(line);
  }
  options.onEvent?.({ type: "listening", url, runId, token, command });
  const local =
    options.localCores > 0
      ? runPoolHost({
          server: `http://127.0.0.1:${coordinator.port}`,
          runId,
          token,
          cores: options.localCores,
          name: "local",
          register: [...modules],
          log,
        }).catch((err) => log(`pools: the local pool left: ${describeError(err)}`))
      : Promise.resolve();
  return {
    hub,
    runId,
    close: async () => {
      hub.close();
      await local;
    },
  };
}

/** What a run with remote pools cannot do, refused before anything starts. */
export function refuseRemotePoolMisuse(needsModules: boolean, modules: readonly string[]): void {
  if (needsModules && modules.length === 0) {
    throw new FedsimError(
      ErrorCode.INCOMPATIBLE_OPTIONS,
      "remotePools: the scenario's client or dataset is defined in this process, and other hosts can only import it from a file; pass the file that defines it (RunOptions.modules; `fedsim run FILE.ts` does)",
    );
  }
}

/**
 * Virtual client id → scenario index, for telling the hub which clients an asynchronous run has
 * in flight; the table is built on first use (ids are hashes, so there is no inverse).
 */
export class ClientIndices {
  private table: Map<string, number> | null = null;

  constructor(
    private readonly clients: number,
    private readonly clientId: (index: number) => string,
  ) {}

  /** The indices of those ids that are virtual clients of this run. */
  of(ids: ReadonlySet<string>): Set<number> {
    const out = new Set<number>();
    if (ids.size === 0) return out;
    if (!this.table) {
      this.table = new Map();
      for (let i = 0; i < this.clients; i++) this.table.set(this.clientId(i), i);
    }
    for (const id of ids) {
      const index = this.table.get(id);
      if (index !== undefined) out.add(index);
    }
    return out;
  }
}
