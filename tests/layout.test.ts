import { readdirSync, readFileSync } from "node:fs";
import { dirname, join, relative, resolve, sep } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");

function sourceFiles(dir: string): string[] {
  return readdirSync(join(root, dir), { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile() && /\.(ts|mts|js|mjs)$/.test(e.name))
    .map((e) => relative(root, join(e.parentPath, e.name)));
}

/** Every relative module specifier in a source text: static imports, re-exports and import(). */
function specifiers(text: string): string[] {
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

/** The top-level folders a file's relative imports reach. */
function reachedFolders(file: string, text: string): string[] {
  return specifiers(text)
    .filter((s) => s.startsWith("."))
    .map((s) => relative(root, resolve(root, dirname(file), s)).split(sep)[0] as string);
}

function offenders(dirs: string[], forbidden: string): string[] {
  return dirs
    .flatMap(sourceFiles)
    .filter((file) => reachedFolders(file, readFileSync(join(root, file), "utf8")).includes(forbidden));
}

describe("layout", () => {
  it("finds static, re-exported and dynamic imports of a folder", () => {
    const text = [
      'import { a } from "../scenarios/sim/pool.js";',
      'export { b } from "../bench/run.js";',
      'const c = await import("../scenarios/x.js");',
    ].join("\n");
    expect(reachedFolders("client/x.ts", text).sort()).toEqual(["bench", "scenarios", "scenarios"]);
    expect(reachedFolders("client/x.ts", 'import { n } from "./node.js";')).toEqual(["client"]);
  });

  it("the client node never imports scenarios/", () => {
    expect(sourceFiles("client").length).toBeGreaterThan(0);
    expect(offenders(["client"], "scenarios")).toEqual([]);
  });

  it("nothing in the product imports bench/", () => {
    expect(offenders(["client", "common", "server", "scenarios", "cli"], "bench")).toEqual([]);
  });
});
