import { readFile } from "node:fs/promises";
import { extname } from "node:path";
import { ErrorCode, FedsimError } from "../../common/errors.js";
import { type DeviceProfile, deviceProfileSchema, profileProblems } from "./device-profiles.js";

/**
 * Device profiles a user brings, as JSON or CSV. Every problem is reported at once, one line
 * each, naming the file, the line (CSV) or the path (JSON), and the field.
 *
 * JSON: an array of profiles, or { "profiles": [...] }, with the fields of deviceProfileSchema
 * (numbers or distributions). CSV: a header row naming columns from PROFILE_COLUMNS, then one
 * profile per line; cells are plain numbers (requiresCharging: true/false/1/0), an empty cell
 * takes the field's default.
 */
export const PROFILE_COLUMNS = [
  "name",
  "share",
  "speed",
  "secondsPerExample",
  "downlinkMbps",
  "uplinkMbps",
  "latencyMs",
  "dropoutPerHour",
  "requiresCharging",
  "utcOffsetHours",
] as const;

export async function loadDeviceProfiles(path: string): Promise<DeviceProfile[]> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "ENOENT")
      throw new FedsimError(ErrorCode.DATA_NOT_FOUND, `device profile file not found: ${path}`);
    throw new FedsimError(
      ErrorCode.BAD_DATA,
      `cannot read device profile file ${path}: ${code ?? String(err)}`,
    );
  }
  const ext = extname(path).toLowerCase();
  if (ext !== ".json" && ext !== ".csv") {
    throw new FedsimError(ErrorCode.BAD_DATA, `${path}: device profiles must be .json or .csv, got "${ext}"`);
  }
  return parseDeviceProfiles(text, ext === ".json" ? "json" : "csv", path);
}

/** Parses profile text; `source` names the file in messages. */
export function parseDeviceProfiles(text: string, format: "json" | "csv", source: string): DeviceProfile[] {
  const rows = format === "json" ? jsonRows(text, source) : csvRows(text, source);
  const problems: string[] = [];
  const profiles: DeviceProfile[] = [];
  for (const row of rows) {
    if (row.problems.length > 0) {
      problems.push(...row.problems.map((p) => `${source}: ${row.where}: ${p}`));
      continue;
    }
    const result = deviceProfileSchema.safeParse(row.value);
    if (!result.success) {
      for (const issue of result.error.issues) {
        const field = issue.path.length > 0 ? issue.path.join(".") : "(row)";
        problems.push(`${source}: ${row.where}: ${field}: ${issue.message}`);
      }
      continue;
    }
    problems.push(...profileProblems(result.data, row.where).map((p) => `${source}: ${p}`));
    profiles.push(result.data);
  }
  if (rows.length === 0) problems.push(`${source}: no device profiles`);
  const withShare = profiles.filter((p) => p.share !== undefined).length;
  if (profiles.length === rows.length && withShare !== 0 && withShare !== rows.length) {
    problems.push(`${source}: share: give every profile a share, or none (equal shares)`);
  }
  if (problems.length > 0) {
    throw new FedsimError(ErrorCode.BAD_DATA, `${source}: invalid device profiles`, problems);
  }
  return profiles;
}

interface Row {
  /** Where the row is, for messages: "line 3" or "profiles.2". */
  where: string;
  value: unknown;
  /** Problems found before validation (CSV cells that are not numbers, a short line). */
  problems: string[];
}

function jsonRows(text: string, source: string): Row[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new FedsimError(ErrorCode.BAD_DATA, `${source}: not valid JSON: ${(err as Error).message}`);
  }
  const list =
    parsed !== null && typeof parsed === "object" && !Array.isArray(parsed) && "profiles" in parsed
      ? (parsed as { profiles: unknown }).profiles
      : parsed;
  if (!Array.isArray(list)) {
    throw new FedsimError(
      ErrorCode.BAD_DATA,
      `${source}: expected an array of profiles or { "profiles": [...] }`,
    );
  }
  return list.map((value, i) => ({ where: `profiles.${i}`, value, problems: [] }));
}

function csvRows(text: string, source: string): Row[] {
  const lines = text.split(/\r?\n/);
  const numbered = lines.map((line, i) => ({ line: i + 1, text: line })).filter((l) => l.text.trim() !== "");
  if (numbered.length === 0) return [];
  const header = splitCells(numbered[0].text);
  const known = new Set<string>(PROFILE_COLUMNS);
  const unknown = header.filter((h) => !known.has(h));
  const repeated = header.filter((h, i) => header.indexOf(h) !== i);
  if (unknown.length > 0 || repeated.length > 0) {
    const details = [
      ...unknown.map((h) => `${source}: line ${numbered[0].line}: unknown column "${h}"`),
      ...repeated.map((h) => `${source}: line ${numbered[0].line}: column "${h}" appears twice`),
    ];
    details.push(`${source}: columns may be: ${PROFILE_COLUMNS.join(", ")}`);
    throw new FedsimError(ErrorCode.BAD_DATA, `${source}: bad CSV header`, details);
  }
  return numbered.slice(1).map(({ line, text: rowText }) => {
    const cells = splitCells(rowText);
    const where = `line ${line}`;
    if (cells.length !== header.length) {
      return { where, value: undefined, problems: [`${cells.length} cells for ${header.length} columns`] };
    }
    const value: Record<string, unknown> = {};
    const problems: string[] = [];
    header.forEach((column, i) => {
      const cell = cells[i];
      if (cell === "") return;
      if (column === "name") value[column] = cell;
      else if (column === "requiresCharging") {
        const lower = cell.toLowerCase();
        if (lower === "true" || lower === "1") value[column] = true;
        else if (lower === "false" || lower === "0") value[column] = false;
        else problems.push(`${column}: "${cell}" is not true, false, 1 or 0`);
      } else {
        const x = Number(cell);
        if (Number.isNaN(x)) problems.push(`${column}: "${cell}" is not a number`);
        else value[column] = x;
      }
    });
    return { where, value, problems };
  });
}

function splitCells(line: string): string[] {
  return line.split(",").map((cell) => cell.trim().replace(/^"(.*)"$/, "$1"));
}
