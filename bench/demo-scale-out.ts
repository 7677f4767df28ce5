import { runScaleOut } from "./scale-out.js";
import { createHosts } from "./scale-out-hosts.js";

/**
 * `npm run demo:scale-out`: the scale-out set-up on hosts of our own (a network namespace each,
 * or loopback without root) and one JSON line on stdout with what it did. Progress goes to stderr.
 */
const POOLS = 2;
const hosts = await createHosts(["coordinator", ...Array.from({ length: POOLS }, (_, k) => `pool${k + 1}`)]);
if (hosts.reason) process.stderr.write(`demo: running every host on loopback: ${hosts.reason}\n`);
try {
  const result = await runScaleOut({
    hosts,
    log: (line) => process.stderr.write(`${line}\n`),
  });
  const line = {
    hosts: result.hosts === "namespaces" ? hosts.hosts.length : 1,
    network: result.hosts,
    ...(result.reason ? { reason: result.reason } : {}),
    edges: 0,
    pools: result.pools.map((p) => ({ name: p.name, address: p.address, clients: p.hosted })),
    clients: result.clients,
    rounds: result.rounds,
    finalAccuracy: Number(result.finalAccuracy.toFixed(4)),
    coordinatorBytesReceived: { withoutEdgeAggregation: result.coordinatorBytesReceived },
  };
  process.stdout.write(`${JSON.stringify(line)}\n`);
} finally {
  await hosts.close();
}
process.exit(0);
