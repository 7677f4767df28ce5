// The live dashboard: one read-only Socket.IO namespace in, DOM and ECharts out. No build step
// and no CDN: the coordinator serves this file, echarts and the socket.io client itself.
import { io } from "./vendor/socket.io.esm.min.js";

/** Beyond this many rows the client table shows counts only; the failed ones come first. */
const MAX_CLIENT_ROWS = 200;
const STATE_ORDER = ["failed", "uploading", "training", "sampled", "cancelled", "done"];

const $ = (id) => document.getElementById(id);

const view = {
  config: {},
  totalRounds: 0,
  targetEpsilon: undefined,
  rounds: [],
  round: 0,
  phase: null,
  detail: undefined,
  clientsRound: 0,
  clients: new Map(),
};

const charts = createCharts();

const token = new URLSearchParams(location.search).get("token");
const socket = io("/dashboard", token ? { auth: { token } } : {});

socket.on("connect", () => setConnection("live", "live"));
socket.on("disconnect", (reason) => setConnection("disconnected", `disconnected (${reason})`));
socket.on("connect_error", (err) => {
  const code = err?.data?.code;
  if (code) setConnection("refused", `refused: ${code}: ${err.message}`);
  else setConnection("connecting", `connecting… (${err.message})`);
});

socket.on("snapshot", (snapshot) => {
  view.config = snapshot.config;
  view.totalRounds = snapshot.totalRounds;
  view.targetEpsilon = snapshot.targetEpsilon;
  view.rounds = snapshot.rounds;
  view.round = snapshot.current.round;
  view.phase = snapshot.current.phase;
  view.detail = snapshot.current.detail;
  view.clientsRound = snapshot.current.clientsRound;
  view.clients = new Map(snapshot.current.clients.map((c) => [c.clientId, c]));
  renderConfig();
  renderProgress();
  renderClients();
  renderRounds();
});

socket.on("phase", (p) => {
  view.round = p.round;
  view.phase = p.phase;
  view.detail = p.detail;
  renderProgress();
});

socket.on("clients", (update) => {
  if (update.round !== view.clientsRound) {
    view.clientsRound = update.round;
    view.clients = new Map();
  }
  for (const c of update.clients) view.clients.set(c.clientId, c);
  renderClients();
});

socket.on("round", (round) => {
  view.rounds = [...view.rounds.filter((r) => r.round !== round.round), round];
  renderProgress();
  renderRounds();
});

function setConnection(state, text) {
  const el = $("connection");
  el.dataset.state = state;
  el.textContent = text;
}

function renderConfig() {
  const body = $("config").tBodies[0];
  body.replaceChildren(
    ...Object.entries(view.config).map(([key, value]) => row([cell(key, "th"), cell(String(value))])),
  );
}

function renderProgress() {
  const done = view.rounds.at(-1)?.round ?? 0;
  $("round").textContent = String(view.round || "–");
  $("total-rounds").textContent = String(view.totalRounds);
  $("phase").textContent = view.phase ?? "–";
  $("phase-detail").textContent = view.detail ?? "";
  const bar = $("rounds-progress");
  bar.max = Math.max(1, view.totalRounds);
  bar.value = Math.min(done, bar.max);
}

function renderClients() {
  const clients = [...view.clients.values()];
  const counts = {};
  for (const c of clients) counts[c.state] = (counts[c.state] ?? 0) + 1;
  $("clients-round").textContent = String(view.clientsRound || "–");
  $("client-counts").textContent = STATE_ORDER.filter((s) => counts[s])
    .map((s) => `${counts[s]} ${s}`)
    .join(" · ");
  const finished = (counts.done ?? 0) + (counts.failed ?? 0) + (counts.cancelled ?? 0);
  const bar = $("clients-progress");
  bar.max = Math.max(1, clients.length);
  bar.value = finished;
  clients.sort(
    (a, b) =>
      STATE_ORDER.indexOf(a.state) - STATE_ORDER.indexOf(b.state) || (a.clientId < b.clientId ? -1 : 1),
  );
  const shown = clients.slice(0, MAX_CLIENT_ROWS);
  $("clients").tBodies[0].replaceChildren(
    ...shown.map((c) => {
      const tr = row([
        cell(c.clientId, "td", "client"),
        cell(c.reason && c.state === "failed" ? `failed (${c.reason})` : c.state, "td", "state"),
        cell(c.code ?? "", "td", "code"),
      ]);
      tr.dataset.client = c.clientId;
      tr.dataset.state = c.state;
      return tr;
    }),
  );
  $("clients-more").textContent =
    clients.length > shown.length ? `and ${clients.length - shown.length} more` : "";
}

function renderRounds() {
  const rounds = view.rounds;
  $("rounds").tBodies[0].replaceChildren(
    ...[...rounds].reverse().map((r) => {
      const tr = row([
        cell(String(r.round), "td", "round"),
        cell(r.evaluated ? r.accuracy.toFixed(4) : "–", "td", "accuracy"),
        cell(r.evaluated ? r.loss.toFixed(4) : "–", "td", "loss"),
        cell(`${r.participants}/${r.sampled}`, "td", "participants"),
        cell(String(r.failures), "td", "failures"),
        cell(r.epsilon !== undefined ? r.epsilon.toFixed(3) : "–", "td", "epsilon"),
        cell(formatBytes(r.bytesReceived), "td", "bytes"),
        cell(r.seconds.toFixed(1), "td", "seconds"),
        cell(r.kept ? `kept previous model: ${r.kept}` : "", "td", "note"),
      ]);
      tr.dataset.round = String(r.round);
      return tr;
    }),
  );
  renderTotals(rounds);
  renderCharts(rounds);
}

function renderTotals(rounds) {
  const kinds = {};
  const codes = {};
  let sent = 0;
  let received = 0;
  for (const r of rounds) {
    for (const [kind, n] of Object.entries(r.failuresByKind)) kinds[kind] = (kinds[kind] ?? 0) + n;
    for (const [code, n] of Object.entries(r.failuresByCode)) codes[code] = (codes[code] ?? 0) + n;
    sent += r.bytesSent;
    received += r.bytesReceived;
  }
  $("failures").tBodies[0].replaceChildren(
    ...Object.entries(kinds)
      .filter(([, n]) => n > 0)
      .map(([kind, n]) => {
        const tr = row([cell(kind), cell(String(n), "td", "count")]);
        tr.dataset.kind = kind;
        return tr;
      }),
  );
  const codeList = Object.entries(codes).map(([code, n]) => `${code} ×${n}`);
  $("failure-codes").textContent = codeList.length > 0 ? `codes: ${codeList.join(", ")}` : "no failures";
  $("bytes-sent").textContent = formatBytes(sent);
  $("bytes-received").textContent = formatBytes(received);

  const spent = [...rounds].reverse().find((r) => r.epsilon !== undefined)?.epsilon;
  const meter = $("epsilon-meter");
  if (spent === undefined) {
    $("epsilon").textContent =
      view.targetEpsilon !== undefined
        ? `ε 0 spent of ${view.targetEpsilon} target`
        : "no differential privacy in this run";
    meter.hidden = view.targetEpsilon === undefined;
    return;
  }
  const target = view.targetEpsilon;
  $("epsilon").textContent =
    target !== undefined ? `ε ${spent.toFixed(3)} spent of ${target} target` : `ε ${spent.toFixed(3)} spent`;
  meter.hidden = target === undefined;
  if (target !== undefined) {
    meter.max = target;
    meter.value = Math.min(spent, target);
  }
}

function createCharts() {
  const lib = globalThis.echarts;
  if (!lib) return null;
  const base = {
    animation: false,
    grid: { left: 50, right: 20, top: 30, bottom: 40 },
    tooltip: { trigger: "axis" },
    legend: { top: 0 },
    xAxis: {
      type: "value",
      name: "round",
      nameLocation: "middle",
      nameGap: 25,
      minInterval: 1,
      min: "dataMin",
    },
    yAxis: { type: "value", scale: true },
    dataZoom: [{ type: "inside" }],
  };
  const accuracy = lib.init($("accuracy-chart"));
  const loss = lib.init($("loss-chart"));
  accuracy.setOption(base);
  loss.setOption(base);
  addEventListener("resize", () => {
    accuracy.resize();
    loss.resize();
  });
  return { accuracy, loss };
}

function renderCharts(rounds) {
  if (!charts) return;
  const evaluated = rounds.filter((r) => r.evaluated);
  const line = (name, points) => ({ name, type: "line", showSymbol: points.length < 60, data: points });
  const federated = rounds.filter((r) => r.federatedAccuracy !== undefined);
  const trained = rounds.filter((r) => r.trainLoss !== undefined);
  charts.accuracy.setOption({
    series: [
      line(
        "test accuracy",
        evaluated.map((r) => [r.round, r.accuracy]),
      ),
      ...(federated.length > 0
        ? [
            line(
              "federated accuracy",
              federated.map((r) => [r.round, r.federatedAccuracy]),
            ),
          ]
        : []),
    ],
  });
  charts.loss.setOption({
    series: [
      line(
        "test loss",
        evaluated.map((r) => [r.round, r.loss]),
      ),
      ...(trained.length > 0
        ? [
            line(
              "clients' train loss",
              trained.map((r) => [r.round, r.trainLoss]),
            ),
          ]
        : []),
    ],
  });
}

function row(cells) {
  const tr = document.createElement("tr");
  tr.append(...cells);
  return tr;
}

function cell(text, tag = "td", className = "") {
  const el = document.createElement(tag);
  el.textContent = text;
  if (className) el.className = className;
  return el;
}

function formatBytes(n) {
  const units = ["B", "kB", "MB", "GB", "TB"];
  let value = n;
  let unit = 0;
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit++;
  }
  return `${unit === 0 ? value : value.toFixed(1)} ${units[unit]}`;
}
