import { spawn } from "node:child_process";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runScaleOut } from "../bench/scale-out.js";
import { createHosts, type Hosts, listNamespaces } from "../bench/scale-out-hosts.js";
import { ensureBuilt } from "./helpers/built-cli.js";

/**
 * Hosts of our own: a network namespace per host joined by veth links to a bridge (root and
 * iproute2; CI has both). Without them the same processes run on loopback and the test says so,
 * unless it must have them: in CI, or with FEDSIM_REQUIRE_NETNS=1.
 */
const required = process.env.CI !== undefined || process.env.FEDSIM_REQUIRE_NETNS === "1";
const made: Hosts[] = [];

async function hosts(names: string[]): Promise<Hosts> {
  const h = await createHosts(names);
  made.push(h);
  if (h.reason) {
    if (required) throw new Error(`network namespaces are required here: ${h.reason}`);
    console.warn(`scale-out hosts: running on loopback, not network namespaces: ${h.reason}`);
  }
  return h;
}

beforeAll(async () => {
  await ensureBuilt();
}, 300_000);

afterAll(async () => {
  for (const h of made) await h.close();
  const left = new Set(listNamespaces());
  expect(made.flatMap((h) => h.namespaces).filter((ns) => left.has(ns))).toEqual([]);
});

describe("scale-out on hosts of our own", () => {
  it("runs a federation with the coordinator, Redis, two edges and two pools on six hosts", async () => {
    const h = await hosts(["coordinator", "redis", "edge1", "edge2", "pool1", "pool2"]);
    const result = await runScaleOut({ hosts: h, edges: true, clients: 12, rounds: 3 });
    expect(result.edges).toBe(2);
    // Each pool reached the coordinator from its own host's address.
    expect(result.pools.map((p) => p.address)).toEqual([h.hosts[4].address, h.hosts[5].address]);
    if (h.kind === "namespaces")
      expect(new Set([result.coordinator, ...result.pools.map((p) => p.address)]).size).toBe(3);
    expect(result.pools.map((p) => p.hosted)).toEqual([6, 6]);
    expect(result.pools.map((p) => p.exitCode)).toEqual([0, 0]);
    expect(result.participants).toEqual([12, 12, 12]);
    expect(result.finalAccuracy).toBeGreaterThan(result.initialAccuracy + 0.2);
    expect(result.recordedBytesReceived).toBeGreaterThan(0);
    // The edges sum their clients' updates: the coordinator's host receives less than the updates.
    if (h.kind === "namespaces")
      expect(result.coordinatorIngressBytes).toBeLessThan(result.recordedBytesReceived);
  }, 600_000);

  it("removes every namespace and what runs inside it when closed, even mid-run", async () => {
    const h = await hosts(["lonely"]);
    // On loopback there is nothing to remove (and the first test said why).
    if (h.kind !== "namespaces") return;
    const script = "console.log('up'); setInterval(() => {}, 1000)";
    const stuck = spawn(...command(h.hosts[0].prefix, [process.execPath, "-e", script]), {
      stdio: ["ignore", "pipe", "ignore"],
    });
    const gone = new Promise((resolve) => stuck.once("exit", (_, signal) => resolve(signal)));
    // Inside the namespace once it speaks.
    await new Promise((resolve) => stuck.stdout?.once("data", resolve));
    expect(listNamespaces()).toEqual(expect.arrayContaining([...h.namespaces]));
    await h.close();
    expect(await gone).toBe("SIGKILL");
    const left = new Set(listNamespaces());
    expect(h.namespaces.filter((ns) => left.has(ns))).toEqual([]);
  }, 120_000);
});

function command(prefix: readonly string[], args: readonly string[]): [string, string[]] {
  const [first, ...rest] = [...prefix, ...args];
  return [first, rest];
}
