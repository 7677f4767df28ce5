import type { ClientDirectory, ClientProxy } from "./client-proxy.js";
import type { RoundAvailability } from "./round-options.js";

/** How long a round waits for its clients unless told otherwise. */
const DEFAULT_WAIT_MS = 120_000;

/** The classic wait: at least `minimum` clients connected (or the wait times out, and the round tries anyway). */
export async function waitForMinimum(
  directory: ClientDirectory,
  round: number,
  minimum: number,
  waitMs: number | undefined,
  log: (line: string) => void,
): Promise<ClientProxy[]> {
  const enough = await directory.waitForClients(minimum, waitMs ?? DEFAULT_WAIT_MS);
  const available = directory.connected();
  if (!enough) {
    log(`round ${round}: only ${available.length} of ${minimum} clients connected; trying anyway`);
  }
  return available;
}

/**
 * A scripted round: wait until the clients the scenario has online are connected, and sample
 * only among them, so a client whose disconnect the server has not yet seen is never picked.
 */
export async function waitForOnline(
  directory: ClientDirectory,
  round: number,
  scripted: RoundAvailability,
  waitMs: number | undefined,
  log: (line: string) => void,
): Promise<ClientProxy[]> {
  const deadline = performance.now() + (waitMs ?? DEFAULT_WAIT_MS);
  const present = () => directory.connected().filter((c) => !scripted.exclude.has(c.id));
  let available = present();
  while (available.length < scripted.expected && performance.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 20));
    available = present();
  }
  if (available.length < scripted.expected) {
    log(`round ${round}: only ${available.length} of ${scripted.expected} online clients connected`);
  }
  return available;
}
