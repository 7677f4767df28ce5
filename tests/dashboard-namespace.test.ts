import { afterEach, describe, expect, it } from "vitest";
import { ErrorCode } from "../common/errors.js";
import { PROTOCOL_VERSION } from "../common/protocol.js";
import type { CoordinatorHandle } from "../server/coordinator.js";
import type { DashboardClient, DashboardRound } from "../server/observe/dashboard-events.js";
import { smallMnist, startTestCoordinator } from "./helpers/federation.js";
import { answerWithNaN, DashboardRecorder } from "./helpers/observe.js";
import { type RogueFederation, startRogueFederation } from "./helpers/rogue.js";

const TOKEN = "dashboard-token-0123456789";

/** Any byte payload anywhere in an event: what a weight or an update would look like on the wire. */
function carriesBytes(value: unknown): boolean {
  if (value instanceof ArrayBuffer || ArrayBuffer.isView(value)) return true;
  if (Array.isArray(value)) return value.some(carriesBytes);
  if (value !== null && typeof value === "object") return Object.values(value).some(carriesBytes);
  return false;
}

describe("the /dashboard namespace", () => {
  let fed: RogueFederation | undefined;
  const recorders: DashboardRecorder[] = [];
  const coordinators: CoordinatorHandle[] = [];
  afterEach(async () => {
    for (const r of recorders.splice(0)) r.close();
    await fed?.close();
    fed = undefined;
    for (const c of coordinators.splice(0)) await c.close();
  });

  const record = (r: DashboardRecorder) => {
    recorders.push(r);
    return r;
  };

  it("feeds a live run: snapshot, phases, every client's states in order, rounds; never a byte of weights", async () => {
    fed = await startRogueFederation({
      coordinator: { rounds: 2, dashboard: { config: { model: "tiny-mlp", strategy: "fedavg", lr: 0.1 } } },
    });
    const watcher = record(new DashboardRecorder(fed.coordinator.url));
    const snapshot = await watcher.snapshot();
    expect(snapshot).toMatchObject({
      config: { model: "tiny-mlp", strategy: "fedavg", lr: 0.1 },
      totalRounds: 2,
      rounds: [],
    });
    const rogue = await fed.admitRogue();
    const run = fed.coordinator.run();
    await answerWithNaN(rogue, 2);
    const result = await run;
    await watcher.waitFor((e) => e.name === "phase" && (e.payload as { phase: string }).phase === "DONE");

    const rounds = watcher.events.filter((e) => e.name === "round").map((e) => e.payload as DashboardRound);
    expect(rounds.map((r) => [r.round, r.accuracy, r.participants, r.failures])).toEqual(
      result.rounds.map((r) => [r.round, r.accuracy, 2, 1]),
    );
    expect(rounds[0].failuresByCode).toEqual({ [ErrorCode.NON_FINITE]: 1 });

    const honestIds = fed.honest.map((c) => c.clientId);
    for (const round of [1, 2]) {
      const changes = watcher.events
        .filter((e) => e.name === "clients" && (e.payload as { round: number }).round === round)
        .flatMap((e) => (e.payload as { clients: DashboardClient[] }).clients);
      const statesOf = (id: string) => changes.filter((c) => c.clientId === id).map((c) => c.state);
      // Real clients' replies carry binary attachments, so "uploading" is seen between the two.
      for (const id of honestIds) expect(statesOf(id)).toEqual(["sampled", "training", "uploading", "done"]);
      expect(statesOf(rogue.clientId)).toEqual(["sampled", "training", "uploading", "failed"]);
      expect(changes.filter((c) => c.state === "failed")).toEqual([
        { clientId: rogue.clientId, state: "failed", reason: "rejected", code: ErrorCode.NON_FINITE },
      ]);
    }
    expect(watcher.events.some((e) => carriesBytes(e.payload))).toBe(false);

    // A page opened after the run gets the whole history in its snapshot.
    const late = record(new DashboardRecorder(fed.coordinator.url));
    const history = await late.snapshot();
    expect(history.rounds.map((r) => r.accuracy)).toEqual(result.rounds.map((r) => r.accuracy));
    expect(history.current.phase).toBe("DONE");
  });

  it("is read-only: what a dashboard socket sends reaches nothing", async () => {
    const { test } = await smallMnist(1, 10, 50);
    const coordinator = await startTestCoordinator(test, { rounds: 0, dashboard: {} });
    coordinators.push(coordinator);
    const watcher = record(new DashboardRecorder(coordinator.url));
    await watcher.snapshot();
    watcher.socket.emit("hello", { protocolVersion: PROTOCOL_VERSION, label: "sneaky" });
    watcher.socket.emit("fitResult", { round: 1, nonce: "x" });
    // A round trip on the same connection (the main namespace, multiplexed): the server has
    // handled the sends above before it answers this hello.
    const main = watcher.socket.io.socket("/");
    main.connect();
    const welcome = await main
      .timeout(20_000)
      .emitWithAck("hello", { protocolVersion: PROTOCOL_VERSION, label: "real" });
    expect(welcome).toMatchObject({ ok: true });
    expect(coordinator.sockets.count()).toBe(1);
    expect([...coordinator.sockets.refusals.keys()]).toEqual([]);
    main.disconnect();
    expect(watcher.socket.connected).toBe(true);
  });

  it("with a token: refuses a missing or wrong one with UNAUTHORIZED, admits the right one (Socket.IO and HTTP)", async () => {
    const { test } = await smallMnist(1, 10, 50);
    const coordinator = await startTestCoordinator(test, {
      rounds: 0,
      dashboard: {},
      dashboardToken: TOKEN,
    });
    coordinators.push(coordinator);
    expect(coordinator.dashboardUrl).toBe(`${coordinator.url}/dashboard/?token=${TOKEN}`);

    const missing = await record(new DashboardRecorder(coordinator.url)).refused();
    expect(missing).toEqual({
      message: "a dashboard token is required",
      data: { code: ErrorCode.UNAUTHORIZED },
    });
    const wrong = await record(new DashboardRecorder(coordinator.url, { token: `${TOKEN}!` })).refused();
    expect(wrong).toEqual({
      message: "the dashboard token is wrong",
      data: { code: ErrorCode.UNAUTHORIZED },
    });
    const admitted = await record(new DashboardRecorder(coordinator.url, { token: TOKEN })).snapshot();
    expect(admitted.totalRounds).toBe(0);

    const page = `${coordinator.url}/dashboard/`;
    const refused = await fetch(page);
    expect(refused.status).toBe(401);
    expect(await refused.json()).toMatchObject({ ok: false, code: ErrorCode.UNAUTHORIZED });
    const opened = await fetch(`${page}?token=${TOKEN}`);
    expect(opened.status).toBe(200);
    expect(await opened.text()).toContain('<script type="module" src="app.js"></script>');
    const cookie = (opened.headers.get("set-cookie") ?? "").split(";")[0];
    expect(opened.headers.get("set-cookie")).toMatch(/HttpOnly; SameSite=Strict/);
    // The page's cookie opens its assets and its socket.
    expect((await fetch(`${page}app.js`)).status).toBe(401);
    expect((await fetch(`${page}app.js`, { headers: { cookie } })).status).toBe(200);
    const viaCookie = record(new DashboardRecorder(coordinator.url, undefined, { cookie }));
    expect((await viaCookie.snapshot()).totalRounds).toBe(0);
  });

  it("without a token: serves the page and its assets from the package to loopback peers", async () => {
    const { test } = await smallMnist(1, 10, 50);
    const coordinator = await startTestCoordinator(test, { rounds: 0, dashboard: {} });
    coordinators.push(coordinator);
    const page = `${coordinator.url}/dashboard/`;
    expect(coordinator.dashboardUrl).toBe(page);
    const html = await fetch(page);
    expect(html.status).toBe(200);
    expect(html.headers.get("content-type")).toBe("text/html; charset=utf-8");
    expect(html.headers.get("content-security-policy")).toContain("script-src 'self'");
    const body = await html.text();
    // Every script the page loads is a relative path on this server: nothing from a CDN.
    const sources = [...body.matchAll(/(?:src|href)="([^"]+)"/g)].map((m) => m[1]);
    expect(sources.sort()).toEqual(["app.js", "style.css", "vendor/echarts.min.js"]);
    for (const asset of ["app.js", "style.css", "vendor/echarts.min.js", "vendor/socket.io.esm.min.js"]) {
      const res = await fetch(`${page}${asset}`);
      expect(res.status, asset).toBe(200);
      expect((await res.arrayBuffer()).byteLength, asset).toBeGreaterThan(500);
    }
    const app = await (await fetch(`${page}app.js`)).text();
    expect(app).toContain('from "./vendor/socket.io.esm.min.js"');
    expect(app).not.toMatch(/https?:\/\//);

    const bare = await fetch(`${coordinator.url}/dashboard`, { redirect: "manual" });
    expect(bare.status).toBe(308);
    expect(bare.headers.get("location")).toBe("/dashboard/");
    expect((await fetch(`${page}../package.json`)).status).toBe(404);
    expect((await fetch(`${page}nothing.js`)).status).toBe(404);
    expect((await fetch(page, { method: "POST" })).status).toBe(405);
  });

  it("is not there unless asked for: no page, no namespace", async () => {
    const { test } = await smallMnist(1, 10, 50);
    const coordinator = await startTestCoordinator(test, { rounds: 0 });
    coordinators.push(coordinator);
    expect(coordinator.dashboardUrl).toBeUndefined();
    expect((await fetch(`${coordinator.url}/dashboard/`)).status).toBe(404);
    const refusal = await record(new DashboardRecorder(coordinator.url)).refused();
    expect(refusal.message).toBe("Invalid namespace");
  });
});
