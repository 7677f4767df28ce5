import os from "node:os";
import type { ClientDirectory } from "../server/client-proxy.js";
import type { Scenario } from "./schema.js";

/**
 * A scenario's `external:` clients: real `fedsim client` processes the run waits for beside its
 * virtual ones. The run prints the command each one runs, waits for them once, and says so out
 * loud when they do not all come, then carries on with whoever is there.
 */

type External = NonNullable<Scenario["external"]>;

/** Where a line the operator must see goes: stdout for the CLI, the log for library callers. */
export type Say = (line: string) => void;

/** Quotes a word for a POSIX shell when it needs it, so the printed command survives a paste. */
function shellWord(word: string): string {
  return /^[A-Za-z0-9_./:=@%+,-]+$/.test(word) ? word : `'${word.replaceAll("'", `'\\''`)}'`;
}

/**
 * An address other machines can dial when the run listens on every interface: the first
 * non-loopback IPv4 address (a host name often does not resolve on a LAN), else the host name.
 */
function reachableAddress(): string {
  for (const addresses of Object.values(os.networkInterfaces())) {
    const v4 = addresses?.find((a) => a.family === "IPv4" && !a.internal);
    if (v4) return v4.address;
  }
  return os.hostname();
}

/**
 * The command external client `index` (0-based) runs: its own partition of the scenario's
 * dataset, cut the way every node cuts it, and the run's token.
 */
export function externalClientCommand(url: string, token: string, scenario: Scenario, index: number): string {
  const external = scenario.external as External;
  const host = external.host === "0.0.0.0" || external.host === "::" ? reachableAddress() : external.host;
  const server = `${url.startsWith("https") ? "https" : "http"}://${host.includes(":") ? `[${host}]` : host}:${new URL(url).port}`;
  const args = [
    "npx",
    "fedsim",
    "client",
    "--server",
    server,
    "--token",
    token,
    "--dataset",
    scenario.dataset.name,
    ...(scenario.dataset.dataDir ? ["--data-dir", scenario.dataset.dataDir] : []),
    "--partition",
    `${index}/${external.clients}`,
  ];
  return args.map(shellWord).join(" ");
}

/** Tells the operator how to start the external clients the run waits for, one command each. */
export function announceExternal(url: string, token: string, scenario: Scenario, say: Say): void {
  const external = scenario.external;
  if (!external) return;
  say(
    `waiting for ${external.clients} external client(s) besides ${scenario.clients} virtual ones, up to ${external.waitSeconds} s; run each on its own machine:`,
  );
  for (let i = 0; i < external.clients; i++) say(`  ${externalClientCommand(url, token, scenario, i)}`);
  say("(plain HTTP: use `fedsim coordinator` with --tls-cert/--tls-key to deploy beyond a trusted network)");
}

/**
 * Waits once for the external clients, besides the virtual ones, for up to `waitSeconds`, and
 * returns how many came. When some did not, it says so out loud: the run then goes on without
 * them rather than waiting again every round.
 */
export async function awaitExternal(
  directory: Pick<ClientDirectory, "waitForClients" | "connected">,
  scenario: Scenario,
  virtualWaitMs: number,
  say: Say,
): Promise<number> {
  const external = scenario.external;
  if (!external) return 0;
  // The virtual clients first, so that slow pools do not eat the external clients' time.
  await directory.waitForClients(scenario.clients, virtualWaitMs);
  const all = scenario.clients + external.clients;
  if (await directory.waitForClients(all, external.waitSeconds * 1000)) return external.clients;
  const came = Math.max(0, Math.min(external.clients, directory.connected().length - scenario.clients));
  say(
    `WARNING: only ${came} of ${external.clients} external client(s) connected within ${external.waitSeconds} s; carrying on without the others (they may still join a later round)`,
  );
  return came;
}
