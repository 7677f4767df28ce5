import { closest, distance } from "fastest-levenshtein";
import type { z } from "zod";

/**
 * "Did you mean" for typos in option names, scenario fields and names of models, strategies and
 * datasets. A candidate is offered only when it is close: a slip of a key or two, not any name.
 */
export function suggest(input: string, candidates: readonly string[]): string | undefined {
  if (input === "" || candidates.length === 0) return undefined;
  const lower = input.toLowerCase();
  const sameCase = candidates.find((c) => c.toLowerCase() === lower);
  if (sameCase !== undefined) return sameCase;
  const best = closest(
    lower,
    candidates.map((c) => c.toLowerCase()),
  );
  const match = candidates.find((c) => c.toLowerCase() === best) ?? best;
  const allowed = Math.max(1, Math.ceil(Math.max(input.length, match.length) / 3));
  return distance(lower, best) <= allowed ? match : undefined;
}

/** `; did you mean "fedprox"?`, or "" when nothing is close. */
export function didYouMean(input: string, candidates: readonly string[]): string {
  const match = suggest(input, candidates);
  return match === undefined ? "" : `; did you mean "${match}"?`;
}

/** The zod v4 definition behind a schema (the parts this module walks). */
interface Def {
  type: string;
  shape?: Record<string, z.ZodType>;
  innerType?: z.ZodType;
  in?: z.ZodType;
  options?: z.ZodType[];
  valueType?: z.ZodType;
  element?: z.ZodType;
}

function defOf(schema: z.ZodType): Def {
  return (schema as unknown as { _zod: { def: Def } })._zod.def;
}

/**
 * The field names an object schema accepts at `path` (every option's, under a union), for
 * suggesting a field when a key is unknown. Empty when the path leads to no object.
 */
export function fieldsAt(schema: z.ZodType, path: readonly PropertyKey[]): string[] {
  const def = defOf(schema);
  switch (def.type) {
    case "optional":
    case "nullable":
    case "default":
    case "prefault":
    case "readonly":
    case "catch":
      return def.innerType ? fieldsAt(def.innerType, path) : [];
    case "pipe":
      return def.in ? fieldsAt(def.in, path) : [];
    case "union":
      return [...new Set((def.options ?? []).flatMap((o) => fieldsAt(o, path)))];
    case "object": {
      const shape = def.shape ?? {};
      if (path.length === 0) return Object.keys(shape);
      const next = shape[String(path[0])];
      return next ? fieldsAt(next, path.slice(1)) : [];
    }
    case "record":
      return def.valueType && path.length > 0 ? fieldsAt(def.valueType, path.slice(1)) : [];
    case "array":
      return def.element && path.length > 0 ? fieldsAt(def.element, path.slice(1)) : [];
    default:
      return [];
  }
}

/** A key as typed when it looks like a field name; quoted when it is empty or odd (`""`, `"a b"`). */
function fieldName(key: string): string {
  return /^[A-Za-z_$][\w$-]*$/.test(key) ? key : JSON.stringify(key);
}

/** The value at `path` in an untrusted input, or undefined (never throws on hostile objects). */
function valueAt(input: unknown, path: readonly PropertyKey[]): unknown {
  try {
    let value = input;
    for (const key of path) {
      if (value === null || typeof value !== "object") return undefined;
      value = (value as Record<PropertyKey, unknown>)[key];
    }
    return value;
  } catch {
    return undefined;
  }
}

/**
 * One line per problem, `prefix` + the field's dotted path + what is wrong, with a "did you
 * mean" for an unknown field (one line per key) and for a value that is not one of the choices.
 */
export function describeIssues(error: z.ZodError, schema: z.ZodType, input: unknown, prefix = ""): string[] {
  return error.issues.flatMap((issue) => {
    const at = issue.path.map(String).join(".");
    if (issue.code === "unrecognized_keys") {
      const fields = fieldsAt(schema, issue.path);
      return issue.keys.map(
        (key) => `${prefix}${at ? `${at}.` : ""}${fieldName(key)}: unknown field${didYouMean(key, fields)}`,
      );
    }
    const given = valueAt(input, issue.path);
    const choices =
      issue.code === "invalid_value"
        ? issue.values.map(String)
        : issue.code === "invalid_union" && "options" in issue && Array.isArray(issue.options)
          ? (issue.options as unknown[]).map(String)
          : [];
    const hint = typeof given === "string" ? didYouMean(given, choices) : "";
    return [`${prefix}${at || "(root)"}: ${issue.message}${hint}`];
  });
}
