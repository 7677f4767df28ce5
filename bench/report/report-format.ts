/** Formatting shared by the report's tables (bench/report/report.ts, bench/report/report-sections.ts). */
export type Cell = string | number | null | undefined;

export interface Table {
  title: string;
  headers: string[];
  rows: Cell[][];
  notes: string[];
}

export function text(cell: Cell): string {
  if (cell === null || cell === undefined) return "–";
  if (typeof cell === "number") return Number.isInteger(cell) ? cell.toLocaleString("en-US") : String(cell);
  return cell;
}

export function fixed(value: number | null | undefined, digits: number): string {
  return value === null || value === undefined ? "–" : value.toFixed(digits);
}

/** Ratios: three decimals, or two significant digits when tiny (0.00041, not 0.000). */
export function ratioText(value: number | null | undefined): string {
  if (value === null || value === undefined) return "–";
  return Math.abs(value) >= 0.01 ? value.toFixed(3) : value.toPrecision(2);
}

export function markdownTable(headers: string[], rows: Cell[][]): string {
  const line = (cells: string[]) => `| ${cells.map((c) => c.replace(/\|/g, "\\|")).join(" | ")} |`;
  return [line(headers), line(headers.map(() => "---")), ...rows.map((r) => line(r.map(text)))].join("\n");
}

export function plainTable(headers: string[], rows: Cell[][]): string {
  const cells = [headers, ...rows.map((r) => r.map(text))];
  const widths = headers.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? "").length)));
  const line = (r: string[]) =>
    r
      .map((c, i) => c.padEnd(widths[i]))
      .join("  ")
      .trimEnd();
  return [line(headers), line(widths.map((w) => "-".repeat(w))), ...cells.slice(1).map(line)].join("\n");
}
