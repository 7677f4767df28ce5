import { describe, expect, it } from "vitest";
import type { ScaleOutSection } from "../bench/sections/scale-out.js";
import { ingressLine, projectIngress } from "../bench/sections/scale-out-projection.js";
import { scaleOutTable } from "../bench/sections/scale-out-table.js";

describe("the scale-out section's ingress projection", () => {
  it("recovers the per-client and fixed bytes from two rounds and projects any size", () => {
    // 3 partial sums of 6,653,480 B plus 261 B of outcome per client.
    const fixed = 3 * 6_653_480;
    const line = ingressLine(
      { clients: 50, bytes: fixed + 50 * 261 },
      { clients: 100, bytes: fixed + 100 * 261 },
    );
    expect(line.perClientBytes).toBe(261);
    expect(line.fixedBytes).toBe(fixed);
    expect(projectIngress(line, 1000)).toBe(fixed + 261_000);
  });

  it("refuses two rounds of the same size, which fix no line", () => {
    expect(() => ingressLine({ clients: 10, bytes: 1 }, { clients: 10, bytes: 2 })).toThrow(/two different/);
  });

  it("reports the projected ingress of both layouts and their ratio", () => {
    const run = (edges: number, clients: number, bytes: number) => ({
      edges,
      clients,
      participants: clients,
      coordinatorIngressBytes: bytes,
      updateBytes: clients * 6_654_034,
      edgeLinkBytes: edges === 0 ? null : bytes,
    });
    const section: ScaleOutSection = {
      connections: [
        {
          edges: 1,
          clients: 3000,
          admitted: 3000,
          counted: 3000,
          edgeRss: [{ before: 130e6, after: 160e6 }],
          edgeRssBytesPerConnection: 10_240,
          coordinatorRss: { before: 200e6, after: 210e6 },
          clientHostRss: 300e6,
        },
      ],
      ingress: {
        model: "mnist-cnn",
        parameters: 1_663_370,
        measured: [run(0, 50, 50 * 6_654_034), run(0, 100, 100 * 6_654_034)],
        edges: 3,
        withoutEdges: { perClientBytes: 6_654_034, fixedBytes: 0 },
        withEdges: { perClientBytes: 261, fixedBytes: 19_960_440 },
        projectedClients: 1000,
        projectedWithoutEdgesBytes: 6_654_034_000,
        projectedWithEdgesBytes: 20_221_440,
      },
    };
    const rows = new Map(scaleOutTable(section).rows.map((r) => [String(r[0]).trim(), r[1]]));
    expect(rows.get("coordinator ingress per round, 1,000 clients, no edges (MB, projected)")).toBe(6654.03);
    expect(rows.get("coordinator ingress per round, 1,000 clients, 3 edges summing (MB, projected)")).toBe(
      20.22,
    );
    expect(rows.get("ratio (edges ÷ none)")).toBe(0.003);
    expect(rows.get("edge RSS per connection (KiB)")).toBe(10);
  });
});
