/**
 * Loading the optional packages behind fedsim's backends (tfjs-node, tfjs-backend-wasm, webgpu), with
 * one-line reasons when they cannot be used. They are imported by names held in variables so the build
 * needs neither their types nor their presence.
 */
import { createRequire } from "node:module";

/** A backend that could not be used, with a one-line reason. */
export class BackendLoadFailure extends Error {}

const requireFromHere = createRequire(import.meta.url);

export function firstLine(text: string): string {
  return text.split("\n", 1)[0]?.trim() ?? "";
}

function isModuleNotFound(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return code === "ERR_MODULE_NOT_FOUND" || code === "MODULE_NOT_FOUND";
}

/**
 * The package's entry file. Resolved before importing so "absent" (`notInstalled`, the reason to give)
 * and "present but broken" give different reasons under any loader.
 */
export function resolvePackage(packageName: string, notInstalled: string): string {
  try {
    return requireFromHere.resolve(packageName);
  } catch (err) {
    if (isModuleNotFound(err)) throw new BackendLoadFailure(notInstalled);
    throw new BackendLoadFailure(`cannot be resolved: ${firstLine(String(err))}`);
  }
}

export async function importPackage(packageName: string, notInstalled: string): Promise<unknown> {
  resolvePackage(packageName, notInstalled);
  try {
    return await import(packageName);
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    throw new BackendLoadFailure(`failed to load: ${firstLine(message)}`);
  }
}
