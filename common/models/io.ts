import { randomBytes } from "node:crypto";
import { mkdir, open, readFile, rename, rm } from "node:fs/promises";
import path from "node:path";
import * as tf from "@tensorflow/tfjs";
import { ErrorCode, FedsimError } from "../errors.js";

/**
 * TensorFlow.js layers-model files (model.json + weights.bin, the layout tfjs-node's `file://`
 * handler writes) without tfjs-node: the pure @tensorflow/tfjs package has no file handler.
 */
export const MODEL_JSON_FILE = "model.json";
export const WEIGHTS_FILE = "weights.bin";

export interface SavedModelPaths {
  modelJsonPath: string;
  weightsPath: string;
}

/**
 * Writes `dir/model.json` and `dir/weights.bin` atomically: each goes to a temp file in the same
 * directory, is fsynced, then renamed; weights first, so a model.json on disk always points to
 * complete weights.
 */
export async function saveModel(model: tf.LayersModel, dir: string): Promise<SavedModelPaths> {
  await mkdir(dir, { recursive: true });
  const modelJsonPath = path.join(dir, MODEL_JSON_FILE);
  const weightsPath = path.join(dir, WEIGHTS_FILE);
  const handler: tf.io.IOHandler = {
    save: async (artifacts: tf.io.ModelArtifacts): Promise<tf.io.SaveResult> => {
      if (artifacts.modelTopology instanceof ArrayBuffer) {
        throw new FedsimError(ErrorCode.INTERNAL, "binary model topologies are not supported");
      }
      const weightSpecs = artifacts.weightSpecs ?? [];
      const weightData = artifacts.weightData ?? new ArrayBuffer(0);
      const manifest: tf.io.WeightsManifestConfig = [{ paths: [WEIGHTS_FILE], weights: weightSpecs }];
      const modelJson = toModelJson(artifacts, manifest);
      const weightBytes = new Uint8Array(tf.io.concatenateArrayBuffers(weightData));
      await writeFileAtomic(weightsPath, weightBytes);
      await writeFileAtomic(modelJsonPath, new TextEncoder().encode(JSON.stringify(modelJson)));
      await fsyncDirectory(dir);
      return { modelArtifactsInfo: tf.io.getModelArtifactsInfoForJSON(artifacts) };
    },
  };
  await model.save(handler);
  return { modelJsonPath, weightsPath };
}

/** model.json's content; tfjs builds the same object internally but does not export it. */
function toModelJson(
  artifacts: tf.io.ModelArtifacts,
  manifest: tf.io.WeightsManifestConfig,
): tf.io.ModelJSON {
  const modelJson: tf.io.ModelJSON = {
    modelTopology: artifacts.modelTopology as object,
    format: artifacts.format ?? "layers-model",
    generatedBy: artifacts.generatedBy ?? `TensorFlow.js tfjs-layers v${tf.version.tfjs}`,
    convertedBy: artifacts.convertedBy ?? null,
    weightsManifest: manifest,
  };
  if (artifacts.trainingConfig !== undefined) modelJson.trainingConfig = artifacts.trainingConfig;
  if (artifacts.signature !== undefined) modelJson.signature = artifacts.signature;
  if (artifacts.userDefinedMetadata !== undefined) {
    modelJson.userDefinedMetadata = artifacts.userDefinedMetadata;
  }
  if (artifacts.modelInitializer !== undefined) {
    modelJson.modelInitializer = artifacts.modelInitializer;
  }
  return modelJson;
}

/** Loads a model written by saveModel (or by tfjs-node / tensorflowjs_converter). */
export async function loadModel(modelJsonPath: string): Promise<tf.LayersModel> {
  try {
    return await tf.loadLayersModel(fileIOHandler(modelJsonPath));
  } catch (err) {
    if (err instanceof FedsimError) throw err;
    // tfjs rejects a malformed topology or a weight mismatch with a plain Error.
    throw new FedsimError(
      ErrorCode.BAD_DATA,
      `cannot load model ${modelJsonPath}: ${err instanceof Error ? err.message : String(err)}`,
    );
  }
}

/** An IOHandler reading model.json and its weight shards (paths relative to model.json). */
export function fileIOHandler(modelJsonPath: string): tf.io.IOHandler {
  return {
    load: async (): Promise<tf.io.ModelArtifacts> => {
      const modelJson = parseModelJson(modelJsonPath, await readOrThrow(modelJsonPath));
      const dir = path.dirname(modelJsonPath);
      return tf.io.getModelArtifactsForJSON(modelJson, async (manifest) => {
        const specs = tf.io.getWeightSpecs(manifest);
        const shards: Uint8Array[] = [];
        for (const group of manifest) {
          for (const relative of group.paths) {
            shards.push(await readOrThrow(resolveShard(dir, relative, modelJsonPath)));
          }
        }
        const weightData = joinBytes(shards);
        const expected = expectedByteLength(specs);
        if (expected !== null && expected !== weightData.byteLength) {
          throw new FedsimError(
            ErrorCode.BAD_DATA,
            `weights of ${modelJsonPath} hold ${weightData.byteLength} bytes, the manifest describes ${expected}`,
          );
        }
        return [specs, weightData];
      });
    },
  };
}

function parseModelJson(modelJsonPath: string, bytes: Uint8Array): tf.io.ModelJSON {
  let parsed: unknown;
  try {
    parsed = JSON.parse(new TextDecoder().decode(bytes));
  } catch (err) {
    throw new FedsimError(
      ErrorCode.BAD_DATA,
      `${modelJsonPath} is not valid JSON: ${err instanceof Error ? err.message : String(err)}`,
    );
  }
  const problems: string[] = [];
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
    problems.push("the file is not a JSON object");
  } else {
    const json = parsed as Record<string, unknown>;
    if (typeof json.modelTopology !== "object" || json.modelTopology === null) {
      problems.push("modelTopology is missing");
    }
    const manifest = json.weightsManifest;
    if (manifest !== undefined && !isWeightsManifest(manifest)) {
      problems.push("weightsManifest must be a list of { paths: string[], weights: [...] }");
    }
  }
  if (problems.length > 0) {
    throw new FedsimError(
      ErrorCode.BAD_DATA,
      `${modelJsonPath} is not a TensorFlow.js layers model: ${problems.join("; ")}`,
      problems,
    );
  }
  return parsed as tf.io.ModelJSON;
}

function isWeightsManifest(value: unknown): value is tf.io.WeightsManifestConfig {
  return (
    Array.isArray(value) &&
    value.every(
      (group) =>
        typeof group === "object" &&
        group !== null &&
        Array.isArray(group.paths) &&
        group.paths.every((p: unknown) => typeof p === "string") &&
        Array.isArray(group.weights),
    )
  );
}

/** Shard paths are relative to model.json and may not point outside its directory. */
function resolveShard(dir: string, relative: string, modelJsonPath: string): string {
  const resolved = path.resolve(dir, relative);
  const root = path.resolve(dir);
  if (path.isAbsolute(relative) || !resolved.startsWith(root + path.sep)) {
    throw new FedsimError(
      ErrorCode.BAD_DATA,
      `${modelJsonPath} lists weight file "${relative}" outside its directory`,
    );
  }
  return resolved;
}

async function readOrThrow(file: string): Promise<Uint8Array> {
  try {
    return await readFile(file);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "ENOENT" || code === "ENOTDIR") {
      throw new FedsimError(ErrorCode.DATA_NOT_FOUND, `model file not found: ${file}`);
    }
    throw new FedsimError(
      ErrorCode.BAD_DATA,
      `cannot read model file ${file}: ${err instanceof Error ? err.message : String(err)}`,
    );
  }
}

function joinBytes(parts: Uint8Array[]): ArrayBuffer {
  let total = 0;
  for (const p of parts) total += p.byteLength;
  const out = new Uint8Array(total);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.byteLength;
  }
  return out.buffer;
}

const BYTES_PER_ELEMENT: Record<string, number> = {
  float32: 4,
  int32: 4,
  bool: 1,
  complex64: 8,
  uint8: 1,
  uint16: 2,
  float16: 2,
};

/** Bytes the manifest's tensors need; null when a string tensor makes the size variable. */
function expectedByteLength(specs: tf.io.WeightsManifestEntry[]): number | null {
  let total = 0;
  for (const spec of specs) {
    const dtype = spec.quantization?.dtype ?? spec.dtype;
    const bytes = BYTES_PER_ELEMENT[dtype];
    if (bytes === undefined) return null;
    let size = 1;
    for (const d of spec.shape) size *= d;
    total += size * bytes;
  }
  return total;
}

async function writeFileAtomic(target: string, bytes: Uint8Array): Promise<void> {
  const temp = path.join(
    path.dirname(target),
    `.${path.basename(target)}.${process.pid}.${randomBytes(4).toString("hex")}.tmp`,
  );
  try {
    const handle = await open(temp, "w");
    try {
      await handle.writeFile(bytes);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(temp, target);
  } catch (err) {
    await rm(temp, { force: true });
    throw err;
  }
}

/** Makes the renames durable; some filesystems refuse to fsync a directory, which is harmless. */
async function fsyncDirectory(dir: string): Promise<void> {
  try {
    const handle = await open(dir, "r");
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
  } catch {
    // Best effort only.
  }
}
