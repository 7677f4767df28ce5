/**
 * What each part of fedsim may import, in one place. docs/ARCHITECTURE.md ("Parts and what they
 * may import") states these rules in prose; tests/layout.test.ts enforces them.
 */

/** The top-level folders of the product (shipped in the package), and which of them each may import. */
export const PART_IMPORTS: Record<string, readonly string[]> = {
  /** Shared code and the pure math: knows nothing of who runs it. */
  common: [],
  /** The coordinator. */
  server: ["common"],
  /** The client node: a real `fedsim client` process; never the scenario engine. */
  client: ["common"],
  /** The scenario engine and the package entry point (scenarios/api.ts). */
  scenarios: ["common", "server", "client"],
  /** Commands: assemble the library. */
  cli: ["common", "server", "client", "scenarios"],
};

/**
 * The import cycles the product still has, each as the files around it. The layout test requires
 * exactly these: a new cycle fails it, and so does breaking one without taking it off this list.
 * - The wire protocol's event maps (protocol.ts) name the pool-session and edge payloads, whose
 *   schemas are built from protocol.ts's own (type-only imports one way, values the other).
 * - The scenario schema embeds the virtual-clock and sweep-override blocks, which check
 *   themselves against the parsed Scenario type.
 */
export const KNOWN_CYCLES: readonly (readonly string[])[] = [
  ["common/edge-protocol.ts", "common/pool-protocol.ts", "common/protocol.ts"],
  ["scenarios/schema.ts", "scenarios/sweep-overrides.ts", "scenarios/virtual-schema.ts"],
];

/** Benchmarks may import the whole product; nothing in the product imports them. */
export const BENCH = "bench";

/**
 * Inside bench/: entry points and shared helpers at the top, `sections/` (one measurement each),
 * `references/` (the PyTorch and other baselines the sections compare against) and `report/`
 * (BENCHMARKS.md from the results). A reference knows nothing of the sections or the report, and
 * no bench file takes part in an import cycle.
 */
export const BENCH_REFERENCES = "bench/references/";
export const BENCH_REFERENCES_NEVER_IMPORT: readonly string[] = ["bench/sections/", "bench/report/"];

/**
 * The pure math: plain functions over Float32Array and numbers, with no sockets and no tfjs,
 * tested directly. Checked transitively: nothing these files import may import a forbidden
 * package either. A folder ends in "/"; "*" matches within one folder.
 */
export const PURE_MATH: readonly string[] = [
  "common/strategy/",
  "common/dp/",
  "common/crypto/secagg/",
  "common/data/partition.ts",
  "common/data/partition-table.ts",
  "common/vector-passes.ts",
  "common/weights.ts",
  "common/rng.ts",
  "common/disclosure.ts",
  "common/train/fast-path-math.ts",
  "scenarios/sim/event-queue.ts",
  "scenarios/sim/fit-duration.ts",
  "scenarios/sim/device-profiles.ts",
  "scenarios/sim/fleet.ts",
  "scenarios/sim/default-fleet.ts",
  "scenarios/sim/availability.ts",
  "scenarios/sim/availability-clock.ts",
  "scenarios/sim/seeded-hash.ts",
  "scenarios/sim/pool-shares.ts",
  "scenarios/sim/virtual-timing.ts",
  "server/virtual-round.ts",
  "server/async-order.ts",
];

/** Packages pure math may never import, directly or through another module: sockets and tfjs. */
export const FORBIDDEN_IN_PURE_MATH: readonly RegExp[] = [
  /^socket\.io(-client|-parser)?$/,
  /^engine\.io/,
  /^ws$/,
  /^node:(net|http|https|http2|dgram|tls)$/,
  /^@tensorflow\//,
];
