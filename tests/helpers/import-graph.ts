import { existsSync, readdirSync, readFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";

/** The repository root (tests/helpers/ → ..). */
export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");

/** Source files under `dir` (relative to the root), with forward slashes. */
export function sourceFiles(dir: string): string[] {
  if (!existsSync(join(ROOT, dir))) return [];
  return readdirSync(join(ROOT, dir), { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile() && /\.(ts|mts|js|mjs)$/.test(e.name))
    .map((e) => toPosix(relative(ROOT, join(e.parentPath, e.name))))
    .sort();
}

/** Every module specifier in a source text: static imports (type-only too), re-exports and import(). */
export function specifiers(text: string): string[] {
  const found: string[] = [];
  const patterns = [
    /\bfrom\s*["']([^"']+)["']/g,
    /\bimport\s*\(\s*["']([^"']+)["']/g,
    /\bimport\s+["']([^"']+)["']/g,
  ];
  for (const pattern of patterns) {
    for (const m of text.matchAll(pattern)) found.push(m[1] as string);
  }
  return found;
}

/** A relative specifier as the source file it names ("./x.js" → "dir/x.ts"). */
export function resolveRelative(file: string, specifier: string): string {
  const target = toPosix(relative(ROOT, resolve(ROOT, dirname(file), specifier)));
  return target.replace(/\.js$/, ".ts").replace(/\.mjs$/, ".mts");
}

export interface ModuleImports {
  /** Repository files this one imports (relative specifiers, resolved). */
  local: string[];
  /** Package and node: specifiers. */
  external: string[];
}

/** A file's imports, split into repository files and packages. `text` defaults to the file on disk. */
export function importsOf(file: string, text?: string): ModuleImports {
  const source = text ?? readFileSync(join(ROOT, file), "utf8");
  const all = specifiers(source);
  return {
    local: all.filter((s) => s.startsWith(".")).map((s) => resolveRelative(file, s)),
    external: all.filter((s) => !s.startsWith(".")),
  };
}

export type ImportGraph = Map<string, ModuleImports>;

/** The import graph of every source file under the given folders. */
export function importGraph(dirs: readonly string[]): ImportGraph {
  const graph: ImportGraph = new Map();
  for (const file of dirs.flatMap(sourceFiles)) graph.set(file, importsOf(file));
  return graph;
}

/** Every file reachable from `start` through local imports (itself included), each with the path that reached it. */
export function reachable(graph: ImportGraph, start: string): Map<string, string[]> {
  const paths = new Map<string, string[]>([[start, [start]]]);
  const queue = [start];
  while (queue.length > 0) {
    const file = queue.shift() as string;
    for (const next of graph.get(file)?.local ?? []) {
      if (paths.has(next)) continue;
      paths.set(next, [...(paths.get(file) as string[]), next]);
      queue.push(next);
    }
  }
  return paths;
}

/** Each import cycle among `files`, as the files around it (strongly connected components of more than one file, or a self-import). */
export function cycles(graph: ImportGraph, files: ReadonlySet<string>): string[][] {
  // Tarjan's algorithm, restricted to edges between `files`.
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const found: string[][] = [];
  let counter = 0;
  const visit = (v: string): void => {
    index.set(v, counter);
    low.set(v, counter);
    counter++;
    stack.push(v);
    onStack.add(v);
    const next = (graph.get(v)?.local ?? []).filter((w) => files.has(w));
    for (const w of next) {
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v) as number, low.get(w) as number));
      } else if (onStack.has(w)) {
        low.set(v, Math.min(low.get(v) as number, index.get(w) as number));
      }
    }
    if (low.get(v) === index.get(v)) {
      const component: string[] = [];
      let w: string;
      do {
        w = stack.pop() as string;
        onStack.delete(w);
        component.push(w);
      } while (w !== v);
      if (component.length > 1 || next.includes(v)) found.push(component.sort());
    }
  };
  for (const file of [...files].sort()) if (!index.has(file)) visit(file);
  return found;
}

/** Whether a repository path matches a rule pattern: "dir/" (a folder), "dir/*.ts" style globs, or a file. */
export function matchesPattern(file: string, pattern: string): boolean {
  if (pattern.endsWith("/")) return file.startsWith(pattern);
  const regex = new RegExp(`^${pattern.replace(/[.+^${}()|[\]\\]/g, "\\$&").replace(/\*/g, "[^/]*")}$`);
  return regex.test(file);
}

function toPosix(path: string): string {
  return path.split("\\").join("/");
}
