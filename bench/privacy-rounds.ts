/**
 * What privacy costs per round: one aggregation round in plain, envelope and SecAgg mode, without
 * training (identical in every mode, benchmarked in bench/sections/training.ts), every party in this
 * process. Usage: node dist/bench/privacy-rounds.js [--quick]
 * Writes bench/results/privacy-rounds.json and docs/BENCHMARKS-privacy.md, prints the table.
 *
 * - plain: each client float32ToBytes; the server validateWeights, then FedAvg weightedMean.
 * - envelope: plain, plus encodePlainUpdate + sealUpdate per client and EnvelopeOpener.open +
 *   decodePlainUpdate on the server.
 * - secagg: quantize + the four SecAgg stages through SecAggClientSession / SecAggServerSession
 *   (complete graph at 10 clients, SecAgg+ above), then dequantizeSum.
 * A round's seconds are the sum of every party's work: the CPU the round costs, not its wall clock
 * with clients running in parallel. The reference is Node's chacha20-poly1305 encrypting one
 * client's update bytes, timed right before each case, since the load of a shared machine drifts.
 */
import { createCipheriv, randomBytes } from "node:crypto";
import { mkdirSync, renameSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { createRoundKeyPair, type Envelope, EnvelopeOpener, sealUpdate } from "../common/crypto/envelope.js";
import { generateIdentity, type Identity } from "../common/crypto/identity.js";
import { SecAggClientSession } from "../common/crypto/secagg/client.js";
import { completeGraph, defaultThreshold, secAggPlusGraph } from "../common/crypto/secagg/graph.js";
import { addMaskInPlace } from "../common/crypto/secagg/prg.js";
import { chooseScale, dequantizeSum, quantize } from "../common/crypto/secagg/quantize.js";
import { SecAggServerSession } from "../common/crypto/secagg/server.js";
import { scaleInPlace, weightedMean } from "../common/strategy/aggregate.js";
import { decodePlainUpdate, encodePlainUpdate } from "../common/update-codec.js";
import { float32ToBytes, type TensorSpec, totalSize, validateWeights } from "../common/weights.js";
import { repoRoot } from "./paths.js";

type Graph = "complete" | "secagg+";

/** A layer's kernel and bias, named as tfjs names them. */
const layer = (name: string, kernel: number[]): TensorSpec[] => [
  { name: `${name}/kernel`, shape: kernel },
  { name: `${name}/bias`, shape: [kernel[kernel.length - 1]] },
];
/** The FedAvg paper's MNIST models: the 2NN (199,210 parameters) and the CNN (1,663,370). */
const MODELS: { name: string; specs: TensorSpec[] }[] = [
  {
    name: "mnist-2nn",
    specs: [...layer("dense1", [784, 200]), ...layer("dense2", [200, 200]), ...layer("dense3", [200, 10])],
  },
  {
    name: "mnist-cnn",
    specs: [
      ...layer("conv1", [5, 5, 1, 32]),
      ...layer("conv2", [5, 5, 32, 64]),
      ...layer("dense1", [3136, 512]),
      ...layer("dense2", [512, 10]),
    ],
  },
];
const CLIENT_COUNTS = [10, 50, 100];
/** Equal weights, so that all three modes compute the same mean and can be checked against each other. */
const EXAMPLES = 600;
const METRICS = { loss: 0.5, accuracy: 0.9, steps: 60, epochsCompleted: 1, seconds: 1 };
const CLIP_RANGE = 0.1;
/** Cases above this many floats in total (clients × params) are timed once, the others REPEATS times. */
const ONE_REPEAT_ABOVE = 17e6;
const REPEATS = 3;

/** Adds up seconds per side (client, server) and per named step. */
class Stopwatch {
  client = 0;
  server = 0;
  readonly parts: Record<string, number> = {};

  time<T>(side: "client" | "server", part: string, fn: () => T): T {
    const start = performance.now();
    const out = fn();
    this.#add(side, part, start);
    return out;
  }

  async timeAsync<T>(side: "client" | "server", part: string, fn: () => Promise<T>): Promise<T> {
    const start = performance.now();
    const out = await fn();
    this.#add(side, part, start);
    return out;
  }

  #add(side: "client" | "server", part: string, start: number): void {
    const seconds = (performance.now() - start) / 1000;
    this[side] += seconds;
    const key = `${side}.${part}`;
    this.parts[key] = (this.parts[key] ?? 0) + seconds;
  }
}

interface RoundResult {
  roundSeconds: number;
  /** Client-side seconds of one client (the mean over the round's clients). */
  perClientSeconds: number;
  serverSeconds: number;
  /** Seconds per step over the whole round, e.g. "client.seal", "server.open". */
  parts: Record<string, number>;
  mean: Float32Array;
}

function finish(watch: Stopwatch, clients: number, mean: Float32Array): RoundResult {
  return {
    roundSeconds: watch.client + watch.server,
    perClientSeconds: watch.client / clients,
    serverSeconds: watch.server,
    parts: watch.parts,
    mean,
  };
}

/** Distinct, deterministic, update-like vectors: rotated copies of one smooth base vector. */
function makeUpdates(clients: number, length: number): Float32Array[] {
  const base = new Float32Array(length);
  for (let i = 0; i < length; i++) base[i] = Math.sin(i * 0.37) * 5e-3;
  return Array.from({ length: clients }, (_, c) => {
    const shift = (c * 7919) % length;
    const update = new Float32Array(length);
    update.set(base.subarray(shift));
    update.set(base.subarray(0, shift), length - shift);
    return update;
  });
}

function plainRound(updates: Float32Array[], specs: TensorSpec[]): RoundResult {
  const watch = new Stopwatch();
  const received = updates.map((u) => watch.time("client", "encode", () => float32ToBytes(u)));
  const values = received.map((bytes) =>
    watch.time("server", "validate", () => validateWeights(specs, specs, bytes)),
  );
  const weights = values.map(() => EXAMPLES);
  const mean = watch.time("server", "aggregate", () => weightedMean(values, weights));
  return finish(watch, updates.length, mean);
}

async function envelopeRound(
  updates: Float32Array[],
  specs: TensorSpec[],
  identities: Identity[],
  round: number,
): Promise<RoundResult> {
  const watch = new Stopwatch();
  const keys = watch.time("server", "open", () => createRoundKeyPair());
  const envelopes: Envelope[] = [];
  for (const [c, update] of updates.entries()) {
    const plaintext = watch.time("client", "encode", () =>
      encodePlainUpdate({
        numExamples: EXAMPLES,
        delta: { specs, data: float32ToBytes(update) },
        metrics: METRICS,
      }),
    );
    envelopes.push(
      await watch.timeAsync("client", "seal", () =>
        sealUpdate({ round, serverPublicKey: keys.publicKey, identity: identities[c], plaintext }),
      ),
    );
  }
  const opener = new EnvelopeOpener({ round, secretKey: keys.secretKey });
  const values: Float32Array[] = [];
  for (const [c, envelope] of envelopes.entries()) {
    const plaintext = await watch.timeAsync("server", "open", () =>
      opener.open(envelope, identities[c].publicKey),
    );
    values.push(
      watch.time("server", "validate", () => {
        const update = decodePlainUpdate(plaintext);
        return validateWeights(specs, update.delta.specs, update.delta.data);
      }),
    );
  }
  opener.close();
  envelopes.length = 0;
  const weights = values.map(() => EXAMPLES);
  const mean = watch.time("server", "aggregate", () => weightedMean(values, weights));
  return finish(watch, updates.length, mean);
}

/** The four SecAgg stages in the order of runSecAggInMemory, without its wire copies, no dropouts. */
async function secaggRound(
  updates: Float32Array[],
  graphKind: Graph,
  round: number,
): Promise<RoundResult & { degree: number }> {
  const watch = new Stopwatch();
  const n = updates.length;
  const ids = updates.map((_, c) => `client-${String(c).padStart(3, "0")}`);
  const scale = chooseScale(CLIP_RANGE, n);
  const { server, degree } = watch.time("server", "route", () => {
    const graph = graphKind === "complete" ? completeGraph(ids) : secAggPlusGraph(ids, { seed: round });
    const minDegree = Math.min(...Object.values(graph).map((neighbours) => neighbours.length));
    const threshold = defaultThreshold(minDegree);
    return {
      server: new SecAggServerSession({ round, clientIds: ids, graph, threshold }),
      degree: minDegree,
    };
  });
  const clients = ids.map((clientId) =>
    watch.time("client", "keys", () => new SecAggClientSession({ clientId, round })),
  );
  for (const [c, client] of clients.entries()) {
    const message = watch.time("client", "keys", () => client.advertiseKeys());
    watch.time("server", "route", () => server.receiveAdvertiseKeys(ids[c], message));
  }
  const neighbourKeys = watch.time("server", "route", () => server.neighbourKeys());
  for (const [c, client] of clients.entries()) {
    const reply = await watch.timeAsync("client", "keys", () => client.shareKeys(neighbourKeys[ids[c]]));
    watch.time("server", "route", () => server.receiveShareKeys(ids[c], reply));
  }
  const routed = watch.time("server", "route", () => server.routeShares());
  for (const [c, client] of clients.entries()) {
    const input = watch.time("client", "quantize", () =>
      quantize(updates[c], { clipRange: CLIP_RANGE, scale }),
    );
    const reply = watch.time("client", "mask", () => client.maskedInput(routed[ids[c]], input));
    watch.time("server", "sum", () => server.receiveMaskedInput(ids[c], reply));
  }
  const requests = watch.time("server", "route", () => server.unmaskRequests());
  for (const [c, client] of clients.entries()) {
    const reply = watch.time("client", "keys", () => client.unmask(requests[ids[c]]));
    watch.time("server", "route", () => server.receiveUnmaskResponse(ids[c], reply));
  }
  const sum = await watch.timeAsync("server", "unmask", () => server.unmask());
  const mean = watch.time("server", "unmask", () => {
    const values = dequantizeSum(sum, scale);
    scaleInPlace(values, 1 / n);
    return values;
  });
  return { ...finish(watch, n, mean), degree };
}

/**
 * The references, sampled a few at a time between the rounds so that they see the same machine load
 * as the rounds do: chacha20-poly1305 encrypting one update's bytes (fresh cipher, update, final,
 * tag), and one SecAgg mask (addMaskInPlace: the PRG expansion of one seed over the vector).
 */
class ReferenceSampler {
  readonly chacha: number[] = [];
  readonly mask: number[] = [];
  readonly #key = randomBytes(32);
  readonly #nonce = randomBytes(12);
  readonly #seed = new Uint8Array(randomBytes(32));
  readonly #target: Uint32Array;

  constructor(readonly bytes: Uint8Array) {
    this.#target = new Uint32Array(bytes.byteLength / 4);
    this.#encrypt(); // warm-up
    addMaskInPlace(this.#target, this.#seed, 1);
  }

  sample(times: number): void {
    for (let i = 0; i < times; i++) {
      this.chacha.push(secondsOf(() => this.#encrypt()));
      this.mask.push(secondsOf(() => addMaskInPlace(this.#target, this.#seed, 1)));
    }
  }

  #encrypt(): void {
    const cipher = createCipheriv("chacha20-poly1305", this.#key, this.#nonce, { authTagLength: 16 });
    cipher.update(this.bytes);
    cipher.final();
    cipher.getAuthTag();
  }
}

function secondsOf(fn: () => void): number {
  const start = performance.now();
  fn();
  return (performance.now() - start) / 1000;
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

function sig(value: number, digits = 4): number {
  return Number.isFinite(value) && value !== 0 ? Number(value.toPrecision(digits)) : value;
}

function maxAbsDifference(a: Float32Array, b: Float32Array): number {
  let max = 0;
  for (let i = 0; i < a.length; i++) max = Math.max(max, Math.abs(a[i] - b[i]));
  return max;
}

/** Median of each field over the repeats (the parts too, step by step). */
function medianRound(samples: RoundResult[]): Omit<RoundResult, "mean"> {
  const parts: Record<string, number> = {};
  for (const key of Object.keys(samples[0].parts)) parts[key] = sig(median(samples.map((s) => s.parts[key])));
  return {
    roundSeconds: median(samples.map((s) => s.roundSeconds)),
    perClientSeconds: median(samples.map((s) => s.perClientSeconds)),
    serverSeconds: median(samples.map((s) => s.serverSeconds)),
    parts,
  };
}

export interface PrivacyRoundCase {
  clients: number;
  params: number;
  model: string;
  graph: Graph;
  /** Neighbours per client in the SecAgg graph: masks per client = degree + 1 (the self mask). */
  degree: number;
  repeats: number;
  plainRoundSeconds: number;
  envelopeRoundSeconds: number;
  secaggRoundSeconds: number;
  envelopeRatio: number;
  secaggRatio: number;
  perClient: {
    plainSeconds: number;
    envelopeSeconds: number;
    secaggSeconds: number;
    /** chacha20-poly1305 encryption of one client's update bytes. */
    chachaSeconds: number;
    envelopeVsChacha: number;
    secaggVsChacha: number;
  };
  serverSeconds: { plain: number; envelope: number; secagg: number };
  /** One addMaskInPlace over the update ÷ chacha20-poly1305 over the same bytes (goal ≤ 3). */
  secaggMaskRatio: number;
  /** Seconds per step over the whole round (median over repeats). */
  breakdown: { envelope: Record<string, number>; secagg: Record<string, number> };
  /** Largest |mean − plain mean|: 0 for the envelope, the fixed-point rounding for SecAgg. */
  maxAbsErrorVsPlain: { envelope: number; secagg: number };
  extrapolated: boolean;
}

export interface GraphComparison {
  clients: number;
  params: number;
  complete: { degree: number; secaggRoundSeconds: number; perClientSeconds: number };
  secaggPlus: { degree: number; secaggRoundSeconds: number; perClientSeconds: number };
}

async function runCase(
  model: { name: string; specs: TensorSpec[] },
  clients: number,
  identities: Identity[],
  /** Also time the SecAgg+ graph (only used where the case's own graph is the complete one). */
  compareGraphs: boolean,
): Promise<{ result: PrivacyRoundCase; comparison?: GraphComparison }> {
  const params = totalSize(model.specs);
  const graph: Graph = clients <= 10 ? "complete" : "secagg+";
  const repeats = clients * params > ONE_REPEAT_ABOVE ? 1 : REPEATS;
  let updates = makeUpdates(clients, params);
  const reference = new ReferenceSampler(float32ToBytes(updates[0]));
  reference.sample(5);
  const plain: RoundResult[] = [];
  const envelope: RoundResult[] = [];
  const secagg: (RoundResult & { degree: number })[] = [];
  const plus: (RoundResult & { degree: number })[] = [];
  const errors = { envelope: 0, secagg: 0 };
  for (let r = 0; r < repeats; r++) {
    const p = plainRound(updates, model.specs);
    reference.sample(2);
    const e = await envelopeRound(updates, model.specs, identities, r);
    reference.sample(2);
    const s = await secaggRound(updates, graph, r);
    reference.sample(2);
    errors.envelope = Math.max(errors.envelope, maxAbsDifference(e.mean, p.mean));
    errors.secagg = Math.max(errors.secagg, maxAbsDifference(s.mean, p.mean));
    plain.push(p);
    envelope.push(e);
    secagg.push(s);
    if (compareGraphs) plus.push(await secaggRound(updates, "secagg+", r));
  }
  updates = [];
  const chacha = median(reference.chacha);
  const mask = median(reference.mask);
  const [pm, em, sm] = [medianRound(plain), medianRound(envelope), medianRound(secagg)];
  const result: PrivacyRoundCase = {
    clients,
    params,
    model: model.name,
    graph,
    degree: secagg[0].degree,
    repeats,
    plainRoundSeconds: sig(pm.roundSeconds),
    envelopeRoundSeconds: sig(em.roundSeconds),
    secaggRoundSeconds: sig(sm.roundSeconds),
    envelopeRatio: sig(em.roundSeconds / pm.roundSeconds, 3),
    secaggRatio: sig(sm.roundSeconds / pm.roundSeconds, 3),
    perClient: {
      plainSeconds: sig(pm.perClientSeconds),
      envelopeSeconds: sig(em.perClientSeconds),
      secaggSeconds: sig(sm.perClientSeconds),
      chachaSeconds: sig(chacha),
      envelopeVsChacha: sig(em.perClientSeconds / chacha, 3),
      secaggVsChacha: sig(sm.perClientSeconds / chacha, 3),
    },
    serverSeconds: {
      plain: sig(pm.serverSeconds),
      envelope: sig(em.serverSeconds),
      secagg: sig(sm.serverSeconds),
    },
    secaggMaskRatio: sig(mask / chacha, 3),
    breakdown: { envelope: em.parts, secagg: sm.parts },
    maxAbsErrorVsPlain: { envelope: sig(errors.envelope, 3), secagg: sig(errors.secagg, 3) },
    extrapolated: false,
  };
  if (!compareGraphs) return { result };
  const summary = (degree: number, m: Omit<RoundResult, "mean">) => ({
    degree,
    secaggRoundSeconds: sig(m.roundSeconds),
    perClientSeconds: sig(m.perClientSeconds),
  });
  const complete = summary(secagg[0].degree, sm);
  return {
    result,
    comparison: { clients, params, complete, secaggPlus: summary(plus[0].degree, medianRound(plus)) },
  };
}

/**
 * What one envelope costs whatever its size, sealing and opening an empty update: the ephemeral
 * X25519 key pair and agreement, the ed25519 signature and its check.
 */
async function envelopeFixedSeconds(identity: Identity): Promise<{ seal: number; open: number }> {
  const keys = createRoundKeyPair();
  const opener = new EnvelopeOpener({ round: 0, secretKey: keys.secretKey });
  const seal = () =>
    sealUpdate({ round: 0, serverPublicKey: keys.publicKey, identity, plaintext: new Uint8Array(0) });
  const sealSeconds: number[] = [];
  const envelopes: Envelope[] = [];
  for (let i = 0; i < 10; i++) {
    const start = performance.now();
    envelopes.push(await seal());
    sealSeconds.push((performance.now() - start) / 1000);
  }
  const openSeconds: number[] = [];
  for (const envelope of envelopes) {
    const start = performance.now();
    await opener.open(envelope, identity.publicKey);
    openSeconds.push((performance.now() - start) / 1000);
  }
  opener.close();
  return { seal: sig(median(sealSeconds.slice(1))), open: sig(median(openSeconds.slice(1))) };
}

export interface PrivacyRoundsResults {
  environment: {
    node: string;
    platform: string;
    cpuModel: string;
    cores: number;
    memoryGiB: number;
    loadAverage: { start: number; end: number };
    generatedAt: string;
    command: string;
    totalSeconds: number;
  };
  /** chacha20-poly1305 encryption throughput over one CNN update (6.65 MB), MB = 10^6 bytes. */
  chacha20MBps: number;
  /** Seconds to seal and to open one empty envelope: the part of the envelope cost that is per message. */
  envelopeFixedSeconds: { seal: number; open: number };
  cases: PrivacyRoundCase[];
  graphComparison: GraphComparison | null;
}

const fmt = (value: number, digits = 3): string =>
  value >= 1000 ? Math.round(value).toLocaleString("en-US") : String(Number(value.toPrecision(digits)));
const pct = (part: number, whole: number): string => `${Math.round((100 * part) / whole)}%`;
const sumParts = (parts: Record<string, number>, prefix: string): number =>
  Object.entries(parts).reduce((total, [key, value]) => total + (key.startsWith(prefix) ? value : 0), 0);

export function renderTables(results: PrivacyRoundsResults): string {
  const rows = results.cases.map((c) => {
    const graph = c.graph === "complete" ? `complete (k=${c.degree})` : `SecAgg+ (k=${c.degree})`;
    const note = `${c.repeats === 1 ? "1 run" : `median of ${c.repeats}`}${c.extrapolated ? ", extrapolated" : ""}`;
    return { c, graph, note };
  });
  return [
    "| clients | params | SecAgg graph | plain s | envelope s | SecAgg s | envelope/plain | SecAgg/plain | runs |",
    "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ...rows.map(
      ({ c, graph, note }) =>
        `| ${c.clients} | ${c.params.toLocaleString("en-US")} | ${graph} | ${fmt(c.plainRoundSeconds)} | ` +
        `${fmt(c.envelopeRoundSeconds)} | ${fmt(c.secaggRoundSeconds)} | ${fmt(c.envelopeRatio)} | ` +
        `${fmt(c.secaggRatio)} | ${note} |`,
    ),
    "",
    "| clients | params | chacha20-poly1305 s | envelope s / client | SecAgg s / client | envelope/chacha | SecAgg/chacha | one mask/chacha |",
    "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ...rows.map(
      ({ c }) =>
        `| ${c.clients} | ${c.params.toLocaleString("en-US")} | ${fmt(c.perClient.chachaSeconds)} | ` +
        `${fmt(c.perClient.envelopeSeconds)} | ${fmt(c.perClient.secaggSeconds)} | ` +
        `${fmt(c.perClient.envelopeVsChacha)} | ${fmt(c.perClient.secaggVsChacha)} | ${fmt(c.secaggMaskRatio)} |`,
    ),
  ].join("\n");
}

/** What the largest case spends its time on, from the per-step breakdowns. */
export function explainCost(results: PrivacyRoundsResults): string {
  const c = results.cases.reduce((a, b) => (b.clients * b.params > a.clients * a.params ? b : a));
  const small = results.cases.find((x) => x.clients === c.clients && x.params < c.params);
  const e = c.breakdown.envelope;
  const s = c.breakdown.secagg;
  const boxMBps =
    (c.clients * c.params * 4) /
    1e6 /
    ((e["client.seal"] ?? 0) - c.clients * results.envelopeFixedSeconds.seal);
  const fixedShare = (x: PrivacyRoundCase) =>
    pct(results.envelopeFixedSeconds.seal, x.perClient.envelopeSeconds);
  const keysShare = (x: PrivacyRoundCase) =>
    pct(x.breakdown.secagg["client.keys"] ?? 0, x.secaggRoundSeconds);
  const maskGoal = c.secaggMaskRatio <= 3 ? "within" : "above";
  return [
    `At ${c.clients} clients × ${c.params.toLocaleString("en-US")} parameters the envelope round costs ` +
      `${fmt(c.envelopeRatio)}× the plain round, and ` +
      `${pct((e["client.seal"] ?? 0) + (e["server.open"] ?? 0), c.envelopeRoundSeconds)} of it is sealUpdate and ` +
      "EnvelopeOpener.open: tweetnacl's pure-JS XSalsa20-Poly1305 (secretbox) over the update's chunks on " +
      `worker threads, on both ends, at about ${fmt(boxMBps)} MB/s against ${fmt(results.chacha20MBps)} MB/s for OpenSSL's chacha20-poly1305. ` +
      `So one client's side (encode + seal) costs ${fmt(c.perClient.envelopeVsChacha)}× a chacha20-poly1305 ` +
      "encryption of the same bytes. Each envelope also has a fixed cost (an ephemeral X25519 key pair and " +
      `agreement and an ed25519 signature: ${fmt(results.envelopeFixedSeconds.seal)} s to seal, ` +
      `${fmt(results.envelopeFixedSeconds.open)} s to open), ${fixedShare(c)} of a client's envelope cost here` +
      `${small ? ` and ${fixedShare(small)} at ${small.params.toLocaleString("en-US")} parameters` : ""}. ` +
      "The server opens every envelope in turn (each one's chunks in parallel), so its share grows linearly " +
      "with the number of clients.",
    "",
    `The SecAgg round costs ${fmt(c.secaggRatio)}× the plain round ` +
      `(${c.graph === "complete" ? "complete graph" : "SecAgg+"}, k=${c.degree}). ` +
      `${pct(s["client.mask"] ?? 0, c.secaggRoundSeconds)} of it is the clients' masking: k+1 = ${c.degree + 1} ` +
      "PRG expansions per client, each a chacha20 keystream added into the update with WebAssembly SIMD, at " +
      `${fmt(c.secaggMaskRatio)}× chacha20-poly1305 per mask (${maskGoal} the ≤ 3× goal). Quantisation takes ` +
      `${pct(s["client.quantize"] ?? 0, c.secaggRoundSeconds)}, key agreement and Shamir sharing ${keysShare(c)}` +
      `${small ? ` (${keysShare(small)} at ${small.params.toLocaleString("en-US")} parameters, where they weigh more)` : ""}, ` +
      `and the server ${pct(sumParts(s, "server."), c.secaggRoundSeconds)}, mostly removing one self mask per ` +
      "survivor. A client's SecAgg cost is thus about k+1 mask expansions: it grows with the graph degree, which " +
      "SecAgg+ keeps at 2·ceil(log2 n) where the complete graph would make it n−1.",
  ].join("\n");
}

export function renderMarkdown(results: PrivacyRoundsResults): string {
  const env = results.environment;
  const comparison = results.graphComparison;
  return [
    "## Privacy cost per round (plain, envelope, SecAgg)",
    "",
    "Written by `node dist/bench/privacy-rounds.js` (bench/privacy-rounds.ts); raw figures in " +
      "`bench/results/privacy-rounds.json`. One aggregation round without training, every party in one " +
      "process: a round's seconds are the sum of all clients' and the server's work. Ratios are against the " +
      "plain round, or against Node's chacha20-poly1305 encrypting one client's update bytes " +
      `(${fmt(results.chacha20MBps)} MB/s here), both measured in the same run.`,
    "",
    `Measured ${env.generatedAt} on ${env.cpuModel}, ${env.cores} cores, node ${env.node}; load average ` +
      `${env.loadAverage.start} at start, ${env.loadAverage.end} at end; ${fmt(env.totalSeconds)} s in all.`,
    "",
    renderTables(results),
    "",
    "- plain: float32ToBytes per client; validateWeights and FedAvg weightedMean on the server.",
    "- envelope: plain plus encodePlainUpdate + sealUpdate per client, EnvelopeOpener.open + decodePlainUpdate on the server.",
    "- SecAgg: quantize and the four SecAgg stages (key advertisement, Shamir key sharing, masked input, " +
      "unmasking) with no dropouts, then dequantizeSum. Complete graph at 10 clients; the SecAgg+ graph " +
      "(k = 2·ceil(log2 n) neighbours) at 50 and 100, as the project recommends at that size: with the " +
      "complete graph each client would expand n masks.",
    "- Per client: one client's own work (the mean over the round's clients). one mask/chacha = one " +
      "addMaskInPlace over the update ÷ chacha20-poly1305 over the same bytes.",
    ...(comparison
      ? [
          `- Graphs at ${comparison.clients} clients × ${comparison.params.toLocaleString("en-US")} params: ` +
            `complete (k=${comparison.complete.degree}) ${fmt(comparison.complete.secaggRoundSeconds)} s per round, ` +
            `${fmt(comparison.complete.perClientSeconds)} s per client; SecAgg+ (k=${comparison.secaggPlus.degree}) ` +
            `${fmt(comparison.secaggPlus.secaggRoundSeconds)} s per round, ${fmt(comparison.secaggPlus.perClientSeconds)} s per client.`,
        ]
      : []),
    "",
    "What dominates the cost:",
    "",
    explainCost(results),
    "",
    "The machine is shared: other processes make single timings vary by tens of percent, at times 2× " +
      "(see the chacha20 column from case to case); the one-run cases carry all of that noise.",
    "",
  ].join("\n");
}

function writeAtomically(file: string, content: string): void {
  mkdirSync(path.dirname(file), { recursive: true });
  writeFileSync(`${file}.tmp`, content);
  renameSync(`${file}.tmp`, file);
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { quick: { type: "boolean", default: false } } });
  const quick = values.quick ?? false;
  const started = performance.now();
  const loadStart = Number(os.loadavg()[0].toFixed(2));
  const log = (line: string) => console.error(`[privacy-rounds] ${line}`);
  const counts = quick ? [10] : CLIENT_COUNTS;
  const identities = Array.from({ length: Math.max(...counts) }, () => generateIdentity());
  const cnnBytes = float32ToBytes(new Float32Array(totalSize(MODELS[1].specs)).fill(1e-3));
  const cnnReference = new ReferenceSampler(cnnBytes);
  cnnReference.sample(9);
  const chacha20MBps = cnnBytes.byteLength / 1e6 / median(cnnReference.chacha);
  const fixed = await envelopeFixedSeconds(identities[0]);
  const cases: PrivacyRoundCase[] = [];
  let graphComparison: GraphComparison | null = null;
  for (const model of MODELS) {
    for (const clients of counts) {
      const caseStart = performance.now();
      const compare = model.name === "mnist-cnn" && clients === 10;
      const { result, comparison } = await runCase(model, clients, identities, compare);
      cases.push(result);
      if (comparison) graphComparison = comparison;
      log(
        `${clients} clients × ${result.params} params: plain ${fmt(result.plainRoundSeconds)} s, envelope ` +
          `${fmt(result.envelopeRoundSeconds)} s, secagg ${fmt(result.secaggRoundSeconds)} s ` +
          `(${((performance.now() - caseStart) / 1000).toFixed(1)} s for the case)`,
      );
    }
  }
  const results: PrivacyRoundsResults = {
    environment: {
      node: process.version,
      platform: `${os.platform()} ${os.arch()}`,
      cpuModel: os.cpus()[0]?.model.trim() ?? "unknown",
      cores: os.availableParallelism?.() ?? os.cpus().length,
      memoryGiB: Number((os.totalmem() / 2 ** 30).toFixed(1)),
      loadAverage: { start: loadStart, end: Number(os.loadavg()[0].toFixed(2)) },
      generatedAt: new Date().toISOString(),
      command: ["node", "dist/bench/privacy-rounds.js", ...process.argv.slice(2)].join(" "),
      totalSeconds: sig((performance.now() - started) / 1000, 3),
    },
    chacha20MBps: sig(chacha20MBps, 3),
    envelopeFixedSeconds: fixed,
    cases,
    graphComparison,
  };
  const root = repoRoot();
  const jsonFile = path.join(root, "bench", "results", "privacy-rounds.json");
  const markdownFile = path.join(root, "docs", "BENCHMARKS-privacy.md");
  writeAtomically(jsonFile, `${JSON.stringify(results, null, 2)}\n`);
  writeAtomically(markdownFile, renderMarkdown(results));
  console.log(`${renderTables(results)}\n\n${explainCost(results)}`);
  console.log(
    `\nwrote ${path.relative(process.cwd(), jsonFile)} and ${path.relative(process.cwd(), markdownFile)}`,
  );
}

/**
 * One case of this suite for another caller (bench/sections/privacy.ts reports the 10-client CNN round):
 * plain, envelope and SecAgg rounds of `clients` clients and the named model, median of a few.
 */
export async function measurePrivacyRound(
  model: "mnist-2nn" | "mnist-cnn",
  clients: number,
): Promise<PrivacyRoundCase> {
  const spec = MODELS.find((m) => m.name === model)!;
  const identities = Array.from({ length: clients }, () => generateIdentity());
  return (await runCase(spec, clients, identities, false)).result;
}

// Run only as a script: bench/sections/privacy.ts imports this module for measurePrivacyRound.
if (process.argv[1] !== undefined && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main().then(
    () => process.exit(0),
    (err: unknown) => {
      console.error(`privacy-rounds: ${err instanceof Error ? err.message : String(err)}`);
      process.exit(1);
    },
  );
}
