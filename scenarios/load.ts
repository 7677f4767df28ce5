import { existsSync, statSync } from "node:fs";
import { rm, writeFile } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { ErrorCode, FedsimError } from "../common/errors.js";
import { isScenarioDefinition, type ScenarioDefinition } from "./define.js";
import { loadScenarioFile } from "./schema.js";

/** This package's root: the nearest folder above this module with a package.json (src or dist). */
const packageRoot = (() => {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  while (!existsSync(path.join(dir, "package.json")) && path.dirname(dir) !== dir) dir = path.dirname(dir);
  return dir;
})();

/**
 * Loads a scenario from a file: YAML or JSON (data only), or a script (.js/.mjs/.ts) whose default
 * export is `defineScenario({...})`. A .ts file of this package runs from its compiled twin in
 * dist/; any other .ts file is transpiled with the TypeScript compiler when it is installed.
 */
export async function loadScenarioSource(file: string): Promise<ScenarioDefinition> {
  const ext = path.extname(file).toLowerCase();
  if (ext === ".yaml" || ext === ".yml" || ext === ".json") {
    return { scenario: await loadScenarioFile(file), hooks: {} };
  }
  if (ext !== ".js" && ext !== ".mjs" && ext !== ".ts" && ext !== ".mts") {
    throw new FedsimError(
      ErrorCode.INVALID_SCENARIO,
      `${file}: unknown scenario file type "${ext}"; use .yaml, .json, .ts, .js or .mjs`,
    );
  }
  const module = await importModule(file);
  const definition = (module as { default?: unknown }).default;
  if (!isScenarioDefinition(definition)) {
    throw new FedsimError(
      ErrorCode.INVALID_SCENARIO,
      `${file}: a scenario script must \`export default defineScenario({ scenario, hooks })\``,
    );
  }
  return definition;
}

/**
 * Imports a script (.js/.mjs) or TypeScript file (.ts/.mts) for what it does on import: a scenario
 * script's default export, and every `defineStrategy`/`defineModel`/`defineDataset`/
 * `defineClient` it runs, which register in this process (pool processes import it again).
 */
export async function importModule(file: string): Promise<unknown> {
  const ext = path.extname(file).toLowerCase();
  if (ext !== ".js" && ext !== ".mjs" && ext !== ".ts" && ext !== ".mts") {
    throw new FedsimError(ErrorCode.INVALID_CONFIG, `${file}: not a module; use .ts, .js or .mjs`);
  }
  const absolute = path.resolve(file);
  if (!existsSync(absolute)) {
    throw new FedsimError(ErrorCode.INVALID_SCENARIO, `${file}: cannot read scenario file (not found)`);
  }
  return ext === ".ts" || ext === ".mts" ? importTypeScript(absolute) : importScript(absolute);
}

async function importScript(absolute: string): Promise<unknown> {
  try {
    return await import(pathToFileURL(absolute).href);
  } catch (err) {
    if (err instanceof FedsimError) throw err;
    throw new FedsimError(
      ErrorCode.INVALID_SCENARIO,
      `${absolute}: the scenario script failed to load: ${(err as Error).message.split("\n")[0]}`,
    );
  }
}

async function importTypeScript(absolute: string): Promise<unknown> {
  const twin = compiledTwin(absolute);
  if (twin) return importScript(twin);
  let ts: typeof import("typescript");
  try {
    ts = (await import("typescript")).default;
  } catch {
    throw new FedsimError(
      ErrorCode.INVALID_SCENARIO,
      `${absolute}: running a .ts scenario needs the TypeScript compiler (npm install typescript), or compile it to .js first`,
    );
  }
  const { readFile } = await import("node:fs/promises");
  const source = await readFile(absolute, "utf8");
  const output = ts.transpileModule(source, {
    compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 },
    fileName: absolute,
  }).outputText;
  // Beside the original, so its relative imports and its packages resolve as written.
  const temp = path.join(
    path.dirname(absolute),
    `.${path.basename(absolute, path.extname(absolute))}.fedsim-${process.pid}.mjs`,
  );
  await writeFile(temp, output);
  try {
    return await importScript(temp);
  } finally {
    await rm(temp, { force: true });
  }
}

/** dist/<path>.js for a .ts file inside this package, when it was compiled after its last edit. */
function compiledTwin(absolute: string): string | null {
  const relative = path.relative(packageRoot, absolute);
  if (relative.startsWith("..") || path.isAbsolute(relative)) return null;
  const twin = path.join(packageRoot, "dist", relative.replace(/\.m?ts$/, ".js"));
  if (!existsSync(twin)) return null;
  return statSync(twin).mtimeMs >= statSync(absolute).mtimeMs ? twin : null;
}
