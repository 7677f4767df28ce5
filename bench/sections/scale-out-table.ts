import type { Table } from "../report/report-format.js";
import type { ScaleOutSection } from "./scale-out.js";

const mb = (bytes: number) => Number((bytes / 1e6).toFixed(2));
const kib = (bytes: number) => Number((bytes / 1024).toFixed(1));
const count = (n: number) => n.toLocaleString("en-US");

export function scaleOutTable(s: ScaleOutSection): Table {
  const g = s.ingress;
  const where = (edges: number) => (edges === 0 ? "no edges" : `${edges} edges summing`);
  return {
    title: "Scale-out over edges (Redis adapter)",
    headers: ["what", "value"],
    rows: [
      ...s.connections.flatMap((c) => [
        [
          `${count(c.clients)} connections on ${c.edges} edge(s): admitted / counted by the coordinator`,
          `${count(c.admitted)} / ${count(c.counted)}`,
        ],
        [`  edge RSS per connection (KiB)`, kib(c.edgeRssBytesPerConnection)],
        [
          `  edge RSS before → with the connections (MB, each edge)`,
          c.edgeRss.map((r) => `${mb(r.before)} → ${mb(r.after)}`).join(", "),
        ],
        [
          `  coordinator process RSS before → after (MB)`,
          `${mb(c.coordinatorRss.before)} → ${mb(c.coordinatorRss.after)}`,
        ],
      ]),
      ...g.measured.map((r) => [
        `coordinator ingress, one ${g.model} round, ${count(r.clients)} clients, ${where(r.edges)} (MB, measured)`,
        `${mb(r.coordinatorIngressBytes)} (${r.participants} updates aggregated)`,
      ]),
      ["  per client, no edges (B: one upload)", Math.round(g.withoutEdges.perClientBytes)],
      [`  per client, ${where(g.edges)} (B: one outcome message)`, Math.round(g.withEdges.perClientBytes)],
      [`  fixed per round, ${where(g.edges)} (B: the partial sums)`, Math.round(g.withEdges.fixedBytes)],
      [
        `coordinator ingress per round, ${count(g.projectedClients)} clients, no edges (MB, projected)`,
        mb(g.projectedWithoutEdgesBytes),
      ],
      [
        `coordinator ingress per round, ${count(g.projectedClients)} clients, ${where(g.edges)} (MB, projected)`,
        mb(g.projectedWithEdgesBytes),
      ],
      [
        "  ratio (edges ÷ none)",
        Number((g.projectedWithEdgesBytes / g.projectedWithoutEdgesBytes).toPrecision(2)),
      ],
    ],
    notes: [
      "Real processes on one machine: redis-server, each edge a `fedsim coordinator --edge` (compiled CLI), the coordinator " +
        "in the bench process, the clients in a forked process as bare Socket.IO connections that complete the real hello " +
        "and admission and then stay idle. Edge memory per connection: (RSS with the connections − RSS before) ÷ its " +
        "connections, both read right after a full garbage collection in the edge.",
      `Ingress: every byte the coordinator's server read on its TCP connections during one FedAvg round on ${g.model} ` +
        `(${count(g.parameters)} parameters), every client answering its fit with a fixed valid update (no training). ` +
        "Without edges that is every client's upload; with edges, one outcome per client and one partial sum per edge " +
        "over their links. Redis traffic (rosters, plans) is not on that server and not counted.",
      `Projected: ingress(n) = fixed + n × per client, the line through the two measured rounds of each layout; ` +
        `1,000 real CNN clients in one process would buffer every client's 6.65 MB fit at once.`,
      "The coordinator's RSS is the bench process's (coordinator, harness and tfjs) after a full GC; it knows the " +
        "edges' clients only from their rosters. Re-measure with `npm run bench -- --only scaleOut` (needs redis-server); " +
        "these are memory and byte counts, not times, so the load average next to the section's date does not bear on them.",
    ],
  };
}
