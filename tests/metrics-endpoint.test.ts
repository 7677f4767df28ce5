import { afterEach, describe, expect, it } from "vitest";
import { ErrorCode } from "../common/errors.js";
import type { CoordinatorHandle } from "../server/coordinator.js";
import { smallMnist, startTestCoordinator } from "./helpers/federation.js";
import { answerWithNaN, parsePrometheus } from "./helpers/observe.js";
import { type RogueFederation, startRogueFederation } from "./helpers/rogue.js";

const TOKEN = "metrics-token-0123456789";

describe("/metrics in Prometheus text format", () => {
  let fed: RogueFederation | undefined;
  const coordinators: CoordinatorHandle[] = [];
  afterEach(async () => {
    await fed?.close();
    fed = undefined;
    for (const c of coordinators.splice(0)) await c.close();
  });

  it("counts rounds, participants, failures by kind and bytes, times rounds, and gauges connected clients", async () => {
    fed = await startRogueFederation({ coordinator: { rounds: 2 } });
    const rogue = await fed.admitRogue();
    const run = fed.coordinator.run();
    await answerWithNaN(rogue, 2);
    const result = await run;

    const res = await fetch(fed.coordinator.metricsUrl);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toMatch(/^text\/plain; version=0\.0\.4/);
    const m = parsePrometheus(await res.text());
    const records = result.rounds;
    expect(records.map((r) => r.participants)).toEqual([2, 2]);
    expect(m.get("fedsim_rounds_total")).toBe(2);
    expect(m.get("fedsim_rounds_kept_total")).toBe(0);
    expect(m.get("fedsim_round")).toBe(2);
    expect(m.get("fedsim_round_participants")).toBe(2);
    expect(m.get("fedsim_round_sampled")).toBe(3);
    expect(m.get("fedsim_participants_total")).toBe(4);
    // The rogue's NaN update is refused twice; the other kinds are listed at zero.
    expect(m.get('fedsim_client_failures_total{kind="rejected"}')).toBe(2);
    expect(m.get('fedsim_client_failures_total{kind="timeout"}')).toBe(0);
    expect(m.get('fedsim_client_failures_total{kind="disconnect"}')).toBe(0);
    const sent = records.reduce((s, r) => s + r.bytesSent, 0);
    const received = records.reduce((s, r) => s + r.bytesReceived, 0);
    expect(sent).toBeGreaterThan(0);
    expect(received).toBeGreaterThan(0);
    expect(m.get("fedsim_bytes_sent_total")).toBe(sent);
    expect(m.get("fedsim_bytes_received_total")).toBe(received);
    expect(m.get("fedsim_round_duration_seconds_count")).toBe(2);
    expect(m.get('fedsim_round_duration_seconds_bucket{le="+Inf"}')).toBe(2);
    expect(m.get("fedsim_round_duration_seconds_sum")).toBeCloseTo(
      records.reduce((s, r) => s + r.seconds, 0),
      6,
    );
    expect(m.get("fedsim_connected_clients")).toBe(3);
    expect(m.get("fedsim_accuracy")).toBeCloseTo(records[1].accuracy, 6);
    expect(m.get("fedsim_loss")).toBeCloseTo(records[1].loss, 6);
    // No DP in this run: no made-up ε.
    expect(m.has("fedsim_epsilon")).toBe(false);

    // Connected clients is read at scrape time: the rogue leaves, the gauge follows.
    const serverSide = fed.coordinator.sockets.io.sockets.sockets.get(rogue.socket.id ?? "");
    expect(serverSide).toBeDefined();
    const gone = new Promise((resolve) => serverSide?.once("disconnect", resolve));
    rogue.close();
    await gone;
    const later = parsePrometheus(await (await fetch(fed.coordinator.metricsUrl)).text());
    expect(later.get("fedsim_connected_clients")).toBe(2);
  });

  it("keeps each coordinator's metrics apart in one process, and wants the token when one is set", async () => {
    const { test } = await smallMnist(1, 10, 50);
    const open = await startTestCoordinator(test, { rounds: 0 });
    coordinators.push(open);
    const guarded = await startTestCoordinator(test, { rounds: 0, dashboardToken: TOKEN });
    coordinators.push(guarded);

    const plain = await fetch(open.metricsUrl);
    expect(plain.status).toBe(200);
    expect(parsePrometheus(await plain.text()).get("fedsim_rounds_total")).toBe(0);

    const refused = await fetch(guarded.metricsUrl);
    expect(refused.status).toBe(401);
    expect(await refused.json()).toEqual({
      ok: false,
      code: ErrorCode.UNAUTHORIZED,
      message: "a dashboard token is required",
    });
    const wrong = await fetch(guarded.metricsUrl, { headers: { Authorization: `Bearer ${TOKEN}x` } });
    expect(wrong.status).toBe(401);
    const scraped = await fetch(guarded.metricsUrl, { headers: { Authorization: `Bearer ${TOKEN}` } });
    expect(scraped.status).toBe(200);
    expect(parsePrometheus(await scraped.text()).get("fedsim_connected_clients")).toBe(0);
  });
});
