import type { Table } from "../report/report-format.js";
import type { ScaleOutSection } from "./scale-out.js";

const mb = (bytes: number) => Number((bytes / 1e6).toFixed(2));
const kib = (bytes: number) => Number((bytes / 1024).toFixed(1));

export function scaleOutTable(s: ScaleOutSection): Table {
  const { withoutEdges: direct, withEdges: edged } = s.ingress;
  return {
    title: "Scale-out over edges (Redis adapter)",
    headers: ["what", "value"],
    rows: [
      ...s.connections.flatMap((c) => [
        [
          `${c.clients.toLocaleString("en-US")} connections on ${c.edges} edge(s): admitted / counted by the coordinator`,
          `${c.admitted.toLocaleString("en-US")} / ${c.counted.toLocaleString("en-US")}`,
        ],
        [`  edge RSS per connection, ${c.edges} edge(s) (KiB)`, kib(c.edgeRssBytesPerConnection)],
        [
          `  edge RSS with its connections, ${c.edges} edge(s) (MB, each)`,
          c.edgeRss.map((r) => mb(r.after)).join(", "),
        ],
        [
          `  coordinator process RSS before → after (MB)`,
          `${mb(c.coordinatorRss.before)} → ${mb(c.coordinatorRss.after)}`,
        ],
      ]),
      [
        `coordinator ingress, one ${s.ingress.model} round, ${direct.clients.toLocaleString("en-US")} clients, no edges (MB)`,
        mb(direct.coordinatorIngressBytes),
      ],
      [
        `coordinator ingress, same round, ${edged.clients.toLocaleString("en-US")} clients on ${edged.edges} edges summing (MB)`,
        mb(edged.coordinatorIngressBytes),
      ],
      [
        "ratio (edges ÷ none)",
        Number((edged.coordinatorIngressBytes / direct.coordinatorIngressBytes).toPrecision(2)),
      ],
      ["updates aggregated (no edges / edges)", `${direct.participants} / ${edged.participants}`],
    ],
    notes: [
      "Real processes on one machine: redis-server, each edge a `fedsim coordinator --edge` (compiled CLI), the coordinator " +
        "in the bench process, the clients in a forked process as bare Socket.IO connections that complete the real hello " +
        "and admission and then stay idle. Edge memory per connection: (RSS with the connections − RSS before) ÷ its connections.",
      `Ingress: every byte the coordinator's server read on its TCP connections during one FedAvg round on ${s.ingress.model} ` +
        `(${s.ingress.parameters.toLocaleString("en-US")} parameters), every client answering its fit with a fixed valid update ` +
        "(no training). Without edges that is every client's upload; with edges, one small outcome per client and one " +
        "partial sum per edge over their links. Redis traffic (rosters, plans) is not on that server and not counted.",
    ],
  };
}
