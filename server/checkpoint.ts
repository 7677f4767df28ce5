import { createHash } from "node:crypto";
import { mkdir, open, readFile, rename, rm } from "node:fs/promises";
import path from "node:path";
import { z } from "zod";
import { ErrorCode, FedsimError } from "../common/errors.js";
import { tensorSpecSchema } from "../common/protocol.js";
import type { Strategy } from "../common/strategy/strategy.js";
import {
  bytesToFloat32,
  type FlatWeights,
  float32ToBytes,
  specsEqual,
  totalSize,
} from "../common/weights.js";
import type { RoundRecord } from "./round-record.js";

/**
 * Crash-safe coordinator state. One file, written to a temp name, fsynced and renamed over the
 * previous one, so a crash at any moment leaves either the old or the new checkpoint whole.
 * Layout: "FSCK" | u32 LE header length | UTF-8 JSON header | float32 weights. The header holds
 * the SHA-256 of the weights and of itself (computed with that field empty), so truncation and
 * bit rot are detected and the file is refused rather than loaded.
 */
export const CHECKPOINT_FILE = "checkpoint.fsck";
const MAGIC = "FSCK";
const VERSION = 1;

const headerSchema = z.object({
  version: z.literal(VERSION),
  /** The last complete round. */
  round: z.number().int().nonnegative(),
  specs: z.array(tensorSpecSchema),
  trainable: z.array(z.string()),
  strategy: z.object({ name: z.string(), state: z.unknown() }),
  plugin: z.unknown(),
  rngState: z.array(z.number().int()),
  /** Client ids seen so far (identities, never secrets). */
  clients: z.array(z.string()),
  records: z.array(z.record(z.string(), z.unknown())),
  /** Anything the caller needs to rebuild the run (e.g. the scenario). */
  context: z.unknown(),
  weightsSha256: z.string().length(64),
  headerSha256: z.string(),
});

export type CheckpointHeader = z.infer<typeof headerSchema>;

export interface Checkpoint {
  header: Omit<CheckpointHeader, "weightsSha256" | "headerSha256" | "version" | "specs">;
  weights: FlatWeights;
}

/** The file handle calls the writer makes; node:fs/promises' FileHandle satisfies it. */
export interface CheckpointFileHandle {
  /** Writes all of `data` at the current position (retrying short writes). */
  writeFile(data: Uint8Array): Promise<void>;
  sync(): Promise<void>;
  close(): Promise<void>;
}

/**
 * The filesystem calls of the checkpoint code, so tests can make any one of them fail the way a
 * full disk does (ENOSPC on write, fsync or rename): as root, permissions cannot simulate it.
 */
export interface CheckpointFs {
  mkdir(dir: string, options: { recursive: true }): Promise<unknown>;
  open(file: string, flags: string, mode?: number): Promise<CheckpointFileHandle>;
  rename(from: string, to: string): Promise<void>;
  rm(file: string, options: { force: true }): Promise<void>;
  readFile(file: string): Promise<Uint8Array>;
}

export const nodeCheckpointFs: CheckpointFs = { mkdir, open, rename, rm, readFile };

export interface CheckpointIoOptions {
  /** Default: node:fs/promises. */
  fs?: CheckpointFs;
}

/** The temp file a write goes through before it is renamed over `CHECKPOINT_FILE`. */
export function checkpointTempFile(dir: string): string {
  return `${path.join(dir, CHECKPOINT_FILE)}.${process.pid}.tmp`;
}

/**
 * Errors from fsync on a directory that mean "this filesystem cannot do that", not "the data is
 * at risk": the rename itself has already happened.
 */
const DIRECTORY_SYNC_UNSUPPORTED = new Set(["EINVAL", "ENOTSUP", "EISDIR", "EPERM", "EBADF", "EACCES"]);

/**
 * Writes `checkpoint` to `dir`/checkpoint.fsck atomically. On any failure (full disk, missing or
 * unwritable folder, …) the temp file is removed, the previous checkpoint is left as it was, and
 * a FedsimError (code CHECKPOINT) names the file, the step and the system's reason.
 */
export async function writeCheckpoint(
  dir: string,
  checkpoint: Checkpoint,
  options: CheckpointIoOptions = {},
): Promise<string> {
  const fs = options.fs ?? nodeCheckpointFs;
  const file = path.join(dir, CHECKPOINT_FILE);
  const tmp = checkpointTempFile(dir);
  const weightBytes = float32ToBytes(checkpoint.weights.values);
  const draft: CheckpointHeader = {
    version: VERSION,
    ...checkpoint.header,
    specs: checkpoint.weights.specs,
    weightsSha256: sha256(weightBytes),
    headerSha256: "",
  };
  draft.headerSha256 = sha256(new TextEncoder().encode(JSON.stringify(draft)));
  const header = new TextEncoder().encode(JSON.stringify(draft));
  const prefix = new Uint8Array(8);
  prefix.set(new TextEncoder().encode(MAGIC), 0);
  new DataView(prefix.buffer).setUint32(4, header.byteLength, true);
  let step = `creating the folder ${dir}`;
  try {
    await fs.mkdir(dir, { recursive: true });
    step = `creating ${tmp}`;
    const handle = await fs.open(tmp, "w", 0o600);
    let synced = false;
    try {
      step = `writing ${tmp}`;
      await handle.writeFile(prefix);
      await handle.writeFile(header);
      await handle.writeFile(weightBytes);
      step = `syncing ${tmp}`;
      await handle.sync();
      synced = true;
    } finally {
      step = synced ? `closing ${tmp}` : step;
      // After a failed write or sync, that error is the one to report, not the close's.
      await handle.close().catch((err: unknown) => {
        if (synced) throw err;
      });
    }
    step = `renaming ${tmp} to ${file}`;
    await fs.rename(tmp, file);
  } catch (err) {
    await fs.rm(tmp, { force: true }).catch(() => undefined);
    throw new FedsimError(
      ErrorCode.CHECKPOINT,
      `could not write checkpoint ${file} (${step}): ${describeCause(err)}; the previous checkpoint is intact`,
    );
  }
  await syncDirectory(fs, dir, file);
  return file;
}

/** Makes the rename durable. It has happened already, so a failure here is no longer "intact". */
async function syncDirectory(fs: CheckpointFs, dir: string, file: string): Promise<void> {
  try {
    const handle = await fs.open(dir, "r");
    try {
      await handle.sync();
    } finally {
      await handle.close().catch(() => undefined);
    }
  } catch (err) {
    const code = (err as NodeJS.ErrnoException | undefined)?.code;
    if (code !== undefined && DIRECTORY_SYNC_UNSUPPORTED.has(code)) return;
    throw new FedsimError(
      ErrorCode.CHECKPOINT,
      `checkpoint ${file} was written, but syncing the folder ${dir} failed: ${describeCause(err)}; it may not survive a power loss`,
    );
  }
}

function describeCause(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const code = (err as NodeJS.ErrnoException).code;
  return code && !err.message.includes(code) ? `${code}: ${err.message}` : err.message;
}

export async function readCheckpoint(
  dir: string,
  options: CheckpointIoOptions = {},
): Promise<Checkpoint & { file: string }> {
  const fs = options.fs ?? nodeCheckpointFs;
  const file = path.join(dir, CHECKPOINT_FILE);
  let bytes: Uint8Array;
  try {
    bytes = new Uint8Array(await fs.readFile(file));
  } catch (err) {
    throw new FedsimError(
      ErrorCode.CHECKPOINT,
      `no checkpoint to resume from: ${file} (${(err as Error).message})`,
    );
  }
  const corrupt = (why: string) =>
    new FedsimError(ErrorCode.CHECKPOINT, `checkpoint ${file} is corrupt (${why}); refusing to load it`);
  if (bytes.byteLength < 8 || new TextDecoder().decode(bytes.subarray(0, 4)) !== MAGIC)
    throw corrupt("bad magic");
  const headerLength = new DataView(bytes.buffer, bytes.byteOffset).getUint32(4, true);
  if (8 + headerLength > bytes.byteLength) throw corrupt("truncated header");
  let raw: unknown;
  try {
    raw = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + headerLength)));
  } catch {
    throw corrupt("header is not JSON");
  }
  const parsed = headerSchema.safeParse(raw);
  if (!parsed.success) throw corrupt(`header: ${parsed.error.issues[0]?.message ?? "invalid"}`);
  const header = parsed.data;
  // Over the header as written (its key order), not zod's re-ordered copy.
  const check = sha256(new TextEncoder().encode(JSON.stringify({ ...(raw as object), headerSha256: "" })));
  if (check !== header.headerSha256) throw corrupt("header checksum mismatch");
  const weightBytes = bytes.subarray(8 + headerLength);
  if (weightBytes.byteLength !== totalSize(header.specs) * 4) throw corrupt("weights truncated");
  if (sha256(weightBytes) !== header.weightsSha256) throw corrupt("weights checksum mismatch");
  const { weightsSha256: _w, headerSha256: _h, version: _v, specs: _s, ...rest } = header;
  return {
    file,
    header: rest,
    weights: { specs: header.specs, values: bytesToFloat32(weightBytes).slice() },
  };
}

function sha256(bytes: Uint8Array): string {
  return createHash("sha256").update(bytes).digest("hex");
}

/** Puts a checkpoint's state into a freshly built coordinator, refusing one that does not fit. */
export function applyCheckpoint(
  checkpoint: Checkpoint,
  global: FlatWeights,
  trainable: ReadonlySet<string>,
  strategy: Strategy,
): void {
  const h = checkpoint.header;
  if (!specsEqual(checkpoint.weights.specs, global.specs)) {
    throw new FedsimError(ErrorCode.CHECKPOINT, "checkpoint: its tensors do not match this model");
  }
  if (h.trainable.length !== trainable.size || h.trainable.some((n) => !trainable.has(n))) {
    throw new FedsimError(ErrorCode.CHECKPOINT, "checkpoint: it was written with other trainable layers");
  }
  if (h.strategy.name !== strategy.name) {
    throw new FedsimError(
      ErrorCode.CHECKPOINT,
      `checkpoint: it was written by strategy "${h.strategy.name}", not "${strategy.name}"`,
    );
  }
  global.values.set(checkpoint.weights.values);
  strategy.restore(h.strategy.state);
}

/** Per-client timings a checkpoint keeps, newest rounds first; metrics.jsonl keeps them all. */
const MAX_CHECKPOINTED_TIMINGS = 20_000;

/**
 * The round records as the checkpoint stores them. Every checkpoint rewrites all records, and the
 * per-client timings grow with sampled clients × rounds (about 180 bytes each), so older rounds
 * lose theirs beyond a budget: a resumed run's timeline then starts later, nothing else changes.
 */
export function compactRecords(records: readonly RoundRecord[]): RoundRecord[] {
  let budget = MAX_CHECKPOINTED_TIMINGS;
  const out: RoundRecord[] = [];
  for (let i = records.length - 1; i >= 0; i--) {
    const r = records[i];
    const timings = r.clients?.length ?? 0;
    if (timings <= budget) {
      budget -= timings;
      out.push(r);
    } else {
      budget = 0;
      out.push({ ...r, clients: [] });
    }
  }
  return out.reverse();
}
