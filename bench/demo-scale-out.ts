import { mkdirSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { describeEnvironment } from "./environment.js";
import { repoRoot } from "./paths.js";
import { runScaleOut, type ScaleOutResult } from "./scale-out.js";
import { createHosts } from "./scale-out-hosts.js";

/**
 * `npm run demo:scale-out`: the scale-out set-up on hosts of our own (a network namespace each,
 * or loopback without root), run twice: pools straight to the coordinator, then through two
 * edges with Redis. One JSON line on stdout, also written with the date and machine to
 * bench/results/scale-out-demo.json (which the docs quote); progress on stderr.
 */
// When it started: the load average then, and at the end, say how busy the machine was.
const environment = describeEnvironment();
const hosts = await createHosts(["coordinator", "redis", "edge1", "edge2", "pool1", "pool2"]);
if (hosts.reason) process.stderr.write(`demo: running every host on loopback: ${hosts.reason}\n`);
const log = (line: string) => process.stderr.write(`${line}\n`);
try {
  const direct = await runScaleOut({ hosts, log });
  const edged = await runScaleOut({ hosts, edges: true, log });
  const pools = (r: ScaleOutResult) =>
    r.pools.map((p) => ({ name: p.name, address: p.address, clients: p.hosted }));
  const line = {
    hosts: hosts.kind === "namespaces" ? hosts.hosts.length : 1,
    network: hosts.kind,
    ...(hosts.reason ? { reason: hosts.reason } : {}),
    edges: edged.edges,
    pools: pools(edged),
    clients: edged.clients,
    rounds: edged.rounds,
    finalAccuracy: Number(edged.finalAccuracy.toFixed(4)),
    finalAccuracyWithoutEdges: Number(direct.finalAccuracy.toFixed(4)),
    // The coordinator host's network ingress over each run: null on loopback, where it cannot be told apart.
    coordinatorBytesReceived: {
      withEdgeAggregation: edged.coordinatorIngressBytes,
      withoutEdgeAggregation: direct.coordinatorIngressBytes,
    },
  };
  process.stdout.write(`${JSON.stringify(line)}\n`);
  const file = path.join(repoRoot(), "bench", "results", "scale-out-demo.json");
  const record = {
    note: "Written by `npm run demo:scale-out`: its JSON line under `result`, with when and where it ran.",
    measuredAt: new Date().toISOString(),
    environment: {
      ...environment,
      loadAverage: { ...environment.loadAverage, end: Number(os.loadavg()[0].toFixed(2)) },
    },
    result: line,
  };
  mkdirSync(path.dirname(file), { recursive: true });
  writeFileSync(file, `${JSON.stringify(record, null, 2)}\n`);
  process.stderr.write(`demo: wrote ${path.relative(process.cwd(), file)}\n`);
} finally {
  await hosts.close();
}
process.exit(0);
