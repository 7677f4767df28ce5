import fc from "fast-check";
import { ErrorCode, FedsimError } from "../../common/errors.js";

/**
 * Shared pieces for the property-based fuzz tests: hostile values, structural mutations of valid
 * messages, and a check that a refusal is a FedsimError with a code from ErrorCode.
 */

export const ERROR_CODES: ReadonlySet<string> = new Set(Object.values(ErrorCode));

/** FUZZ_SEED reproduces a run; otherwise each run explores new inputs (the seed is printed). */
export const FUZZ_SEED = Number(process.env.FUZZ_SEED ?? Date.now() % 2 ** 31);

/**
 * Runs `fn` and returns "ok" or the code of the FedsimError it threw. Anything else thrown (a
 * TypeError, a RangeError, a ZodError escaping a handler) is rethrown so the property fails on it.
 */
export function outcomeOf(fn: () => unknown, allowed?: readonly string[]): "ok" | ErrorCode {
  try {
    fn();
    return "ok";
  } catch (err) {
    return typedCode(err, allowed);
  }
}

export async function outcomeOfAsync(
  fn: () => Promise<unknown>,
  allowed?: readonly string[],
): Promise<"ok" | ErrorCode> {
  try {
    await fn();
    return "ok";
  } catch (err) {
    return typedCode(err, allowed);
  }
}

function typedCode(err: unknown, allowed?: readonly string[]): ErrorCode {
  if (!(err instanceof FedsimError) || !ERROR_CODES.has(err.code)) throw err;
  if (allowed && !allowed.includes(err.code)) {
    throw new Error(`refused with ${err.code} (${err.message}); expected one of ${allowed.join(", ")}`);
  }
  return err.code;
}

/** The float32 bytes of `count` values made by `fill`. */
export function floatBytes(count: number, fill: (i: number) => number): Uint8Array {
  const values = new Float32Array(count);
  for (let i = 0; i < count; i++) values[i] = fill(i);
  return new Uint8Array(values.buffer);
}

export const specialNumber = fc.constantFrom(
  Number.NaN,
  Number.POSITIVE_INFINITY,
  Number.NEGATIVE_INFINITY,
  -0,
  0,
  1,
  -1,
  0.5,
  2 ** 31,
  2 ** 32,
  2 ** 53,
  2 ** 53 + 2,
  Number.MAX_VALUE,
  Number.MIN_VALUE,
  -(2 ** 31),
);

export const hostileNumber: fc.Arbitrary<number> = fc.oneof(specialNumber, fc.double(), fc.integer());

/** Names that trip naive object handling (prototype keys, empty, numeric-looking). */
export const trickyKey = fc.constantFrom(
  "__proto__",
  "constructor",
  "prototype",
  "toString",
  "hasOwnProperty",
  "valueOf",
  "$b64",
  "",
  "0",
  "length",
);

/**
 * JSON objects that have no primitive value: `{"toString":0}` survives JSON.parse, and any
 * comparison or template string on it throws a TypeError (zod's length checks compare `.length`).
 */
export const primitiveBomb: fc.Arbitrary<unknown> = fc.constantFrom(
  { toString: 0, valueOf: 0 },
  { length: { toString: 0 } },
  { length: { valueOf: 0, toString: 0 } },
  { length: 1e9 },
  { length: -1, 0: "a" },
  { size: { toString: 0 } },
);

export interface HostileOptions {
  /** Longest "huge" string; the live test keeps it under the coordinator's payload limit. */
  hugeString?: number;
  maxDepth?: number;
}

export function hostileString(options: HostileOptions = {}): fc.Arbitrary<string> {
  const huge = options.hugeString ?? 300_000;
  return fc.oneof(
    { weight: 4, arbitrary: fc.string() },
    { weight: 1, arbitrary: fc.string({ unit: "grapheme", maxLength: 40 }) },
    { weight: 1, arbitrary: trickyKey },
    { weight: 1, arbitrary: fc.integer({ min: huge / 10, max: huge }).map((n) => "x".repeat(n)) },
    { weight: 1, arbitrary: fc.constantFrom("NaN", "Infinity", "1e309", "-0", "0x10", " 1 ") },
  );
}

export function hostileBytes(maxLength = 4096): fc.Arbitrary<Uint8Array> {
  return fc.oneof(
    fc.uint8Array({ maxLength: 80 }),
    fc.integer({ min: 0, max: maxLength }).map((n) => new Uint8Array(n).fill(0xff)),
    fc.integer({ min: 1, max: Math.max(1, maxLength >> 2) }).map((n) => floatBytes(n, () => Number.NaN)),
  );
}

/**
 * Anything a hostile peer could put on the wire: JSON-ish trees of hostile leaves plus binaries,
 * and fast-check's own `anything` (typed arrays, null prototypes, sparse arrays, boxed values).
 */
export function hostileValue(options: HostileOptions = {}): fc.Arbitrary<unknown> {
  const maxDepth = options.maxDepth ?? 3;
  const leaf = fc.oneof(
    hostileNumber,
    hostileString(options),
    fc.boolean(),
    fc.constant(null),
    fc.constant(undefined),
    hostileBytes(),
    primitiveBomb,
  );
  const tree = fc.letrec((tie) => ({
    value: fc.oneof(
      { depthSize: "small", maxDepth },
      leaf,
      fc.array(tie("value"), { maxLength: 5 }),
      fc.dictionary(fc.oneof(fc.string(), trickyKey), tie("value"), { maxKeys: 5 }),
    ),
  })).value;
  return fc.oneof(
    { weight: 3, arbitrary: tree },
    {
      weight: 1,
      arbitrary: fc.anything({
        maxDepth,
        withTypedArray: true,
        withNullPrototype: true,
        withSparseArray: true,
        withBoxedValues: true,
        withDate: true,
        withMap: true,
        withSet: true,
        withObjectString: true,
      }),
    },
  );
}

export type Path = (string | number)[];

function isContainer(value: unknown): value is Record<string | number, unknown> {
  return value !== null && typeof value === "object" && !ArrayBuffer.isView(value);
}

/** Every path into `value` (itself included), through plain objects and arrays, not binaries. */
export function pathsOf(value: unknown, prefix: Path = [], out: Path[] = []): Path[] {
  out.push(prefix);
  if (!isContainer(value) || prefix.length >= 8 || out.length > 500) return out;
  const keys = Array.isArray(value) ? value.map((_, i) => i) : Object.keys(value);
  for (const key of keys) pathsOf((value as Record<string | number, unknown>)[key], [...prefix, key], out);
  return out;
}

const DELETE = Symbol("delete");

/** A copy of `root` with the value at `path` replaced by `change(old)` (or removed). */
export function updateAt(root: unknown, path: Path, change: (old: unknown) => unknown): unknown {
  if (path.length === 0) return change(root);
  if (!isContainer(root)) return root;
  const [head, ...rest] = path;
  const copy = (Array.isArray(root) ? [...root] : { ...root }) as Record<string | number, unknown>;
  const next = updateAt(copy[head], rest, change);
  if (next === DELETE) {
    if (Array.isArray(copy)) (copy as unknown[]).splice(Number(head), 1);
    else delete copy[head];
  } else {
    // defineProperty: a "__proto__" key must stay a key, not become the prototype.
    Object.defineProperty(copy, head, { value: next, enumerable: true, writable: true, configurable: true });
  }
  return copy;
}

const MUTATIONS = ["replace", "delete", "addKey", "nonFinite", "retype", "huge", "bytes", "number"] as const;
type MutationKind = (typeof MUTATIONS)[number];

function mutateOne(old: unknown, kind: MutationKind, hostile: unknown, pick: number, huge: number): unknown {
  switch (kind) {
    case "replace":
      return hostile;
    case "delete":
      return DELETE;
    case "addKey":
      return isContainer(old) && !Array.isArray(old) ? { ...old, [`extra${pick % 7}`]: hostile } : hostile;
    case "nonFinite":
      return [Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY][pick % 3];
    case "retype":
      if (typeof old === "number") return String(old);
      if (typeof old === "string") return pick % 2 === 0 ? Number(old) : [old];
      if (old instanceof Uint8Array) return Array.from(old.subarray(0, 64));
      return pick % 2 === 0 ? safeString(old) : { value: old };
    case "huge":
      return "y".repeat(huge);
    case "bytes": {
      if (!(old instanceof Uint8Array)) return new Uint8Array(pick % 97);
      const bytes = new Uint8Array(old);
      if (pick % 4 === 0 && bytes.length > 0) bytes[pick % bytes.length] ^= 1 + (pick % 255);
      if (pick % 4 === 1) return bytes.subarray(0, Math.max(0, bytes.length - 1 - (pick % 5)));
      if (pick % 4 === 2) {
        const longer = new Uint8Array(bytes.length + 1 + (pick % 8));
        longer.set(bytes);
        return longer;
      }
      if (pick % 4 === 3 && bytes.length >= 4) new DataView(bytes.buffer).setFloat32(0, Number.NaN, true);
      return bytes;
    }
    case "number":
      if (typeof old !== "number") return pick % 2 === 0 ? -1 : 0.5;
      return [old + 1, -old, old * 2 ** 32, old + 0.5, old - 1][pick % 5];
  }
}

function safeString(value: unknown): string {
  try {
    return String(value);
  } catch {
    return "[no primitive value]";
  }
}

export interface Mutated {
  value: unknown;
  /** The dotted paths that were changed ("" for the root). */
  paths: string[];
}

export type MutationStep = [where: number, kind: MutationKind, hostile: unknown, pick: number];

/** 1–3 mutation steps, to apply to a value only known at run time (see applyMutations). */
export function mutationSteps(options: HostileOptions = {}): fc.Arbitrary<MutationStep[]> {
  const step = fc.tuple(fc.nat(), fc.constantFrom(...MUTATIONS), hostileValue(options), fc.nat());
  return fc.array(step, { minLength: 1, maxLength: 3 });
}

/** Applies each step in turn: pick a path of the current value, break what is there. */
export function applyMutations(
  valid: unknown,
  steps: readonly MutationStep[],
  hugeString = 300_000,
): Mutated {
  let value = valid;
  const paths: string[] = [];
  for (const [where, kind, hostile, pick] of steps) {
    const all = pathsOf(value);
    const path = all[where % all.length];
    value = updateAt(value, path, (old) => mutateOne(old, kind, hostile, pick, hugeString));
    paths.push(path.join("."));
  }
  return { value: value === DELETE ? undefined : value, paths };
}

/** 1–3 structural mutations of a valid value. */
export function mutationsOf(valid: unknown, options: HostileOptions = {}): fc.Arbitrary<Mutated> {
  return mutationSteps(options).map((steps) => applyMutations(valid, steps, options.hugeString));
}

/** Counts of what came back for each message sent with an ack. */
export class AckTally {
  sent = 0;
  readonly sentByEvent = new Map<string, number>();
  readonly byCode = new Map<string, number>();
  accepted = 0;
  /** Acknowledged messages that got no reply, each described (event, payload preview, socket state). */
  readonly unanswered: string[] = [];
  /** Acknowledged messages over Socket.IO's attachment cap whose connection was closed, as documented. */
  closedAsDocumented = 0;
  /** Replies that were neither {ok:true} nor {ok:false} with a known code. */
  readonly untyped: unknown[] = [];
  /** ok:true replies to messages the test did not mark as valid. */
  readonly garbageAccepted: string[] = [];

  countSent(event: string): void {
    this.sent++;
    this.sentByEvent.set(event, (this.sentByEvent.get(event) ?? 0) + 1);
  }

  get noReply(): number {
    return this.unanswered.length;
  }

  /** Records an acknowledged message that got no reply. */
  missed(what: string): void {
    this.unanswered.push(what);
  }

  /** Records a reply; returns its code (or "ok"). */
  record(reply: unknown, legit: boolean, what: string): string {
    const r = reply as { ok?: unknown; code?: unknown; message?: unknown } | null;
    if (r?.ok === true) {
      this.accepted++;
      if (!legit) this.garbageAccepted.push(what);
      return "ok";
    }
    if (
      r?.ok === false &&
      typeof r.code === "string" &&
      ERROR_CODES.has(r.code) &&
      typeof r.message === "string"
    ) {
      this.byCode.set(r.code, (this.byCode.get(r.code) ?? 0) + 1);
      return r.code;
    }
    this.untyped.push(reply);
    return "untyped";
  }

  summary(): Record<string, unknown> {
    return {
      sent: this.sent,
      sentByEvent: Object.fromEntries(this.sentByEvent),
      accepted: this.accepted,
      refusedByCode: Object.fromEntries([...this.byCode].sort()),
      noReply: this.noReply,
      unanswered: this.unanswered,
      closedAsDocumented: this.closedAsDocumented,
      untyped: this.untyped.length,
      garbageAccepted: this.garbageAccepted.length,
    };
  }
}

/** Counts process-level failures while installed; `dispose` removes the listeners. */
export function installCrashCounters(): {
  uncaught: unknown[];
  unhandled: unknown[];
  dispose: () => void;
} {
  const uncaught: unknown[] = [];
  const unhandled: unknown[] = [];
  const onUncaught = (err: unknown) => uncaught.push(err);
  const onUnhandled = (reason: unknown) => unhandled.push(reason);
  process.on("uncaughtException", onUncaught);
  process.on("unhandledRejection", onUnhandled);
  return {
    uncaught,
    unhandled,
    dispose() {
      process.off("uncaughtException", onUncaught);
      process.off("unhandledRejection", onUnhandled);
    },
  };
}

/** Rough size on the wire: binaries by length, the rest as JSON. */
/**
 * `value` as the coordinator receives it: Socket.IO sends binaries as attachments (they arrive as
 * Buffers) and everything else as JSON, so boxed primitives unbox, `toJSON` applies and undefined
 * fields vanish. Judge validity on this, not on the local value: `{ label: new String("x") }` is
 * invalid here and a valid hello there.
 */
export function asReceived(value: unknown): unknown {
  const binaries: Buffer[] = [];
  const marker = "\u0000fuzz-binary:";
  const json = JSON.stringify(value, function (this: Record<string, unknown>, key, v: unknown) {
    // The holder's own value, before toJSON: a Buffer's toJSON would hide that it is binary.
    const raw = this[key];
    if (ArrayBuffer.isView(raw) || raw instanceof ArrayBuffer) {
      const view = raw instanceof ArrayBuffer ? new Uint8Array(raw) : raw;
      binaries.push(Buffer.from(view.buffer.slice(view.byteOffset, view.byteOffset + view.byteLength)));
      return `${marker}${binaries.length - 1}`;
    }
    return v;
  });
  if (json === undefined) return undefined;
  return JSON.parse(json, (_key, v: unknown) =>
    typeof v === "string" && v.startsWith(marker) ? binaries[Number(v.slice(marker.length))] : v,
  );
}

export function approxWireBytes(value: unknown): { bytes: number; binaries: number } {
  let binaries = 0;
  let binaryBytes = 0;
  const json = JSON.stringify(value, (_key, v: unknown) => {
    if (ArrayBuffer.isView(v) || v instanceof ArrayBuffer) {
      binaries++;
      binaryBytes += v.byteLength;
      return 0;
    }
    return v;
  });
  return { bytes: (json?.length ?? 0) * 3 + binaryBytes, binaries };
}

export function bitEqual(a: Float32Array, b: Float32Array): boolean {
  return (
    a.length === b.length &&
    Buffer.compare(
      Buffer.from(a.buffer, a.byteOffset, a.byteLength),
      Buffer.from(b.buffer, b.byteOffset, b.byteLength),
    ) === 0
  );
}
