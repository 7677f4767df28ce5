import { createHash } from "node:crypto";
import { mkdir, open, readFile, rename, rm } from "node:fs/promises";
import path from "node:path";
import { z } from "zod";
import { ErrorCode, FedsimError } from "../common/errors.js";
import { tensorSpecSchema } from "../common/protocol.js";
import { bytesToFloat32, type FlatWeights, float32ToBytes, totalSize } from "../common/weights.js";

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

export async function writeCheckpoint(dir: string, checkpoint: Checkpoint): Promise<string> {
  const file = path.join(dir, CHECKPOINT_FILE);
  const tmp = `${file}.${process.pid}.tmp`;
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
  try {
    await mkdir(dir, { recursive: true });
    const handle = await open(tmp, "w", 0o600);
    try {
      await handle.writeFile(prefix);
      await handle.write(header);
      await handle.write(weightBytes);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(tmp, file);
    const dirHandle = await open(dir, "r");
    try {
      await dirHandle.sync();
    } finally {
      await dirHandle.close();
    }
  } catch (err) {
    await rm(tmp, { force: true }).catch(() => undefined);
    throw new FedsimError(
      ErrorCode.CHECKPOINT,
      `could not write checkpoint ${file}: ${(err as Error).message}; the previous checkpoint is intact`,
    );
  }
  return file;
}

export async function readCheckpoint(dir: string): Promise<Checkpoint & { file: string }> {
  const file = path.join(dir, CHECKPOINT_FILE);
  let bytes: Uint8Array;
  try {
    bytes = new Uint8Array(await readFile(file));
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
