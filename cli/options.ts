import type { z } from "zod";
import { ErrorCode, FedsimError } from "../common/errors.js";
import { didYouMean } from "../common/suggest.js";

/** Parses commander's options with a zod schema; one detail line per bad option, named as typed. */
export function parseOptions<T extends z.ZodType>(schema: T, options: unknown): z.output<T> {
  const parsed = schema.safeParse(options);
  if (parsed.success) return parsed.data;
  throw new FedsimError(
    ErrorCode.INVALID_CONFIG,
    "invalid options",
    parsed.error.issues.map((i) => {
      const name = i.path.map(String).join(".");
      const given = (options as Record<string, unknown> | null)?.[name];
      const hint =
        i.code === "invalid_value" && typeof given === "string"
          ? didYouMean(given, i.values.map(String))
          : "";
      return `--${kebab(name)}: ${i.message}${hint}`;
    }),
  );
}

function kebab(name: string): string {
  return name.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
}

/** commander gives strings; numbers are coerced here so zod can check ranges. */
export function num(value: string): number {
  const n = Number(value);
  return Number.isNaN(n) ? Number.NaN : n;
}

export function list(value: string): string[] {
  return value
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean);
}

/** Progress lines go to stderr, so that stdout carries only what a command prints as its result (e.g. `--json`). */
export function stderrLog(prefix = ""): (line: string) => void {
  return (line) => process.stderr.write(`${prefix}${line}\n`);
}
