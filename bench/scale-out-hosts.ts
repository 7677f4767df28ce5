import { execFile, execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { promisify } from "node:util";

const run = promisify(execFile);

/** One simulated machine: its address, and the command prefix that runs a process on it. */
export interface Host {
  name: string;
  address: string;
  /** e.g. ["ip", "netns", "exec", "fs1a2b-pool1"]; empty on loopback. */
  prefix: string[];
}

export interface Hosts {
  /** "namespaces": one network namespace per host; "loopback": every host is this machine's loopback. */
  kind: "namespaces" | "loopback";
  /** Why the hosts are on loopback, when they are. */
  reason?: string;
  hosts: Host[];
  /** The namespaces made (the switch's first); empty on loopback. */
  namespaces: readonly string[];
  /** Removes every namespace and link this made (killing what still runs inside); safe to call twice. */
  close(): Promise<void>;
}

/** The hosts' subnet: private, and only ever configured inside the namespaces made here. */
const SUBNET = "10.77.0";

/**
 * Hosts of our own on one machine: a network namespace per host, each with one veth link to a
 * bridge that lives in a namespace of its own (the "switch"), so nothing is added to the
 * machine's own network namespace and all traffic stays on these namespaces and loopback.
 * Needs root and iproute2; without them (or when the kernel refuses), every host is loopback
 * and `reason` says why.
 */
export async function createHosts(names: readonly string[]): Promise<Hosts> {
  const loopback = (reason: string): Hosts => ({
    kind: "loopback",
    reason,
    hosts: names.map((name) => ({ name, address: "127.0.0.1", prefix: [] })),
    namespaces: [],
    close: async () => {},
  });
  if (process.getuid?.() !== 0) return loopback("network namespaces need root");
  // Unique per run, so runs side by side never touch each other's namespaces.
  const tag = `fs${randomBytes(3).toString("hex")}`;
  const switchNs = `${tag}-switch`;
  const made: string[] = [];
  const ip = (...args: string[]) => run("ip", args, { timeout: 30_000 });
  const cleanupSync = () => removeNamespaces(made);
  // A signal ends the process without its "exit" event: clean up, then die of the signal.
  const onSignal = (signal: NodeJS.Signals) => {
    cleanupSync();
    process.kill(process.pid, signal);
  };
  process.once("exit", cleanupSync);
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);
  const close = async () => {
    process.off("exit", cleanupSync);
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
    removeNamespaces(made);
  };
  try {
    await ip("netns", "add", switchNs);
    made.push(switchNs);
    await ip("-n", switchNs, "link", "add", "br0", "type", "bridge");
    await ip("-n", switchNs, "link", "set", "br0", "up");
    const hosts: Host[] = [];
    for (const [k, name] of names.entries()) {
      const ns = `${tag}-${name}`;
      const address = `${SUBNET}.${k + 1}`;
      await ip("netns", "add", ns);
      made.push(ns);
      await ip(
        "-n",
        switchNs,
        "link",
        "add",
        `port${k}`,
        "type",
        "veth",
        "peer",
        "name",
        "eth0",
        "netns",
        ns,
      );
      await ip("-n", switchNs, "link", "set", `port${k}`, "master", "br0", "up");
      await ip("-n", ns, "addr", "add", `${address}/24`, "dev", "eth0");
      await ip("-n", ns, "link", "set", "eth0", "up");
      await ip("-n", ns, "link", "set", "lo", "up");
      hosts.push({ name, address, prefix: ["ip", "netns", "exec", ns] });
    }
    return { kind: "namespaces", hosts, namespaces: [...made], close };
  } catch (err) {
    await close();
    const message = (err as { stderr?: string }).stderr?.trim() || (err as Error).message;
    return loopback(`network namespaces could not be created: ${message}`);
  }
}

/** Kills what still runs in each namespace, then deletes it (its veth ends go with it). */
function removeNamespaces(made: string[]): void {
  for (const ns of made.splice(0).reverse()) {
    try {
      const pids = execFileSync("ip", ["netns", "pids", ns], { encoding: "utf8", timeout: 10_000 });
      for (const pid of pids.split("\n").filter(Boolean)) {
        try {
          process.kill(Number(pid), "SIGKILL");
        } catch {
          // Already gone.
        }
      }
      execFileSync("ip", ["netns", "del", ns], { stdio: "ignore", timeout: 10_000 });
    } catch {
      // Deleted already, or never fully made.
    }
  }
}

/** The network namespaces that exist now (for tests that check the clean-up). */
export function listNamespaces(): string[] {
  try {
    const out = execFileSync("ip", ["netns", "list"], { encoding: "utf8", timeout: 10_000 });
    return out
      .split("\n")
      .map((line) => line.split(" ")[0])
      .filter((ns) => ns !== undefined && ns !== "");
  } catch {
    return [];
  }
}
