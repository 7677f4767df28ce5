import { existsSync, readFileSync } from "node:fs";
import { mkdir, readdir, readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { Command } from "commander";
import { z } from "zod";
import { ErrorCode, FedsimError } from "../../common/errors.js";
import { parseOptions } from "../options.js";

export interface NewProjectOptions {
  /** The project's npm name (lower case, digits, ".", "_", "-"). */
  name: string;
  /** Where to create it; default ./NAME. It must not exist, or be empty. */
  directory?: string;
  /** The fedsim dependency in package.json; default ^ this fedsim's version. */
  fedsim?: string;
}

export interface NewProjectResult {
  directory: string;
  /** Paths written, relative to the directory. */
  files: string[];
}

const newProjectSchema = z.object({
  name: z
    .string()
    .max(214)
    .regex(/^[a-z0-9][a-z0-9._-]*$/, {
      error: "use lower-case letters, digits, '.', '_' and '-' (an npm name)",
    }),
  directory: z.string().min(1).optional(),
  fedsim: z.string().min(1).optional(),
});

/** This package's root: the nearest folder above this module with a package.json (src or dist). */
function packageRoot(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  while (!existsSync(path.join(dir, "package.json")) && path.dirname(dir) !== dir) dir = path.dirname(dir);
  return dir;
}

/**
 * Writes a project that depends on fedsim, from templates/project: a scenario, a custom strategy
 * and a custom model, tests, and a README saying what to edit first. The library call behind
 * `fedsim new`. npm drops files named .gitignore from packages, so the template's is "gitignore".
 */
export async function newProject(options: NewProjectOptions): Promise<NewProjectResult> {
  const parsed = newProjectSchema.safeParse(options);
  if (!parsed.success) {
    throw new FedsimError(
      ErrorCode.INVALID_CONFIG,
      "new: invalid options",
      parsed.error.issues.map((i) => `${i.path.join(".") || "(root)"}: ${i.message}`),
    );
  }
  const { name } = parsed.data;
  const directory = path.resolve(parsed.data.directory ?? name);
  if (existsSync(directory) && (await readdir(directory)).length > 0) {
    throw new FedsimError(ErrorCode.INVALID_CONFIG, `new: ${directory} exists and is not empty`);
  }
  const root = packageRoot();
  const templates = path.join(root, "templates", "project");
  const version = (JSON.parse(readFileSync(path.join(root, "package.json"), "utf8")) as { version: string })
    .version;
  const fedsim = parsed.data.fedsim ?? `^${version}`;
  const files: string[] = [];
  for (const relative of await listFiles(templates)) {
    const text = (await readFile(path.join(templates, relative), "utf8"))
      .replaceAll("__NAME__", name)
      // JSON-escaped, so any spec (a path with quotes or backslashes) stays valid package.json.
      .replaceAll('"__FEDSIM__"', JSON.stringify(fedsim));
    const target = relative === "gitignore" ? ".gitignore" : relative;
    await mkdir(path.dirname(path.join(directory, target)), { recursive: true });
    await writeFile(path.join(directory, target), text);
    files.push(target);
  }
  return { directory, files: files.sort() };
}

async function listFiles(dir: string, prefix = ""): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(path.join(dir, prefix), { withFileTypes: true })) {
    const relative = path.join(prefix, entry.name);
    if (entry.isDirectory()) out.push(...(await listFiles(dir, relative)));
    else out.push(relative);
  }
  return out;
}

const cliSchema = z.object({ dir: z.string().optional(), fedsim: z.string().optional() });

export function newCommand(): Command {
  return new Command("new")
    .description("create a project that builds on fedsim: a scenario, a custom strategy and model, tests")
    .argument("<name>", "the project's name (and its directory, unless --dir)")
    .option("--dir <dir>", "where to create it (default ./NAME)")
    .option("--fedsim <spec>", "the fedsim dependency for package.json (default ^ this version)")
    .action(async (name: string, raw: unknown) => {
      const o = parseOptions(cliSchema, raw);
      const result = await newProject({
        name,
        ...(o.dir ? { directory: o.dir } : {}),
        ...(o.fedsim ? { fedsim: o.fedsim } : {}),
      });
      const where = path.relative(process.cwd(), result.directory) || ".";
      process.stdout.write(
        `created ${where}: ${result.files.join(", ")}\n\nnext:\n  cd ${where}\n  npm install\n  npm start\n  npm test\n\nthen edit src/scenario.ts, src/strategy.ts and src/model.ts (README.md says more)\n`,
      );
    });
}
