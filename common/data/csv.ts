import { existsSync, statSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { ErrorCode, FedsimError } from "../errors.js";
import { createRng, deriveSeed, shuffleInPlace } from "../rng.js";
import { type Dataset, subset, type TrainTest, validateDataset } from "./dataset.js";

/**
 * Numeric CSV datasets: one example per line, one column holds the integer label, every other
 * column is a feature. Cells are separated by commas (or `delimiter`); surrounding whitespace and
 * double quotes are ignored. Anything that is not a finite number is refused, naming the cell:
 * "row" is the 1-based line number in the file (header included), "column" is 1-based.
 */
export interface CsvOptions {
  /** Which column holds the label: "first", "last" (default) or a 0-based column index. */
  labelColumn?: "first" | "last" | number;
  /** Whether the first line is a header. "auto" (default): yes when any cell in it is not a number. */
  header?: "auto" | boolean;
  /** Multiplier applied to every feature, like Keras' Rescaling: 1/255 turns bytes into [0, 1]. Default 1. */
  scale?: number;
  /** Shape of one example; its product must equal the number of feature columns. Default [features]. */
  exampleShape?: number[];
  /** Number of classes; default max label + 1 (at least 2). */
  numClasses?: number;
  delimiter?: string;
  name?: string;
}

export function parseCsvDataset(text: string, options: CsvOptions = {}): Dataset {
  const name = options.name ?? "csv";
  const delimiter = options.delimiter ?? ",";
  const scale = options.scale ?? 1;
  if (!Number.isFinite(scale)) {
    throw new FedsimError(
      ErrorCode.INVALID_CONFIG,
      `csv "${name}": scale must be a finite number, got ${scale}`,
    );
  }
  // Rows are split one at a time (not all cells up front) so a large file does not hold
  // millions of cell strings at once. Line numbers are kept for messages; blank lines are skipped.
  const lines = text.split(/\r?\n/);
  const rowLines: number[] = [];
  for (let i = 0; i < lines.length; i++) if (lines[i].trim() !== "") rowLines.push(i);
  if (rowLines.length === 0) throw new FedsimError(ErrorCode.BAD_DATA, `csv "${name}": no rows`);
  const cellsOf = (line: number): string[] => lines[line].split(delimiter).map(cleanCell);

  const firstCells = cellsOf(rowLines[0]);
  const header = options.header ?? "auto";
  const hasHeader = header === "auto" ? firstCells.some((cell) => !isNumberCell(cell)) : header;
  const headerCells = hasHeader ? firstCells : undefined;
  const dataLines = hasHeader ? rowLines.slice(1) : rowLines;
  if (dataLines.length === 0)
    throw new FedsimError(ErrorCode.BAD_DATA, `csv "${name}": a header but no data rows`);

  const numColumns = cellsOf(dataLines[0]).length;
  if (numColumns < 2) {
    throw new FedsimError(ErrorCode.BAD_DATA, `csv "${name}": need a label column and at least one feature`);
  }
  const labelIndex = resolveLabelColumn(options.labelColumn ?? "last", numColumns, name);
  const numFeatures = numColumns - 1;
  const exampleShape = options.exampleShape ?? [numFeatures];
  const shapeSize = exampleShape.reduce((a, b) => a * b, 1);
  if (shapeSize !== numFeatures) {
    throw new FedsimError(
      ErrorCode.INVALID_CONFIG,
      `csv "${name}": exampleShape [${exampleShape}] has ${shapeSize} values but rows have ${numFeatures} features`,
    );
  }

  const n = dataLines.length;
  const x = new Float32Array(n * numFeatures);
  const y = new Int32Array(n);
  let maxLabel = 0;
  const cellError = (line: number, c: number, why: string): FedsimError => {
    const column = headerCells?.[c] ? `column ${c + 1} ("${headerCells[c]}")` : `column ${c + 1}`;
    return new FedsimError(ErrorCode.BAD_DATA, `csv "${name}": row ${line + 1}, ${column}: ${why}`);
  };
  for (let r = 0; r < n; r++) {
    const line = dataLines[r];
    const cells = cellsOf(line);
    if (cells.length !== numColumns) {
      throw new FedsimError(
        ErrorCode.BAD_DATA,
        `csv "${name}": row ${line + 1} has ${cells.length} columns, expected ${numColumns}`,
      );
    }
    let feature = r * numFeatures;
    for (let c = 0; c < numColumns; c++) {
      const cell = cells[c];
      if (!isNumberCell(cell)) throw cellError(line, c, `"${cell}" is not a finite number`);
      const value = Number(cell);
      if (c === labelIndex) {
        if (!Number.isInteger(value) || value < 0) {
          throw cellError(line, c, `label "${cell}" is not a non-negative integer`);
        }
        y[r] = value;
        if (value > maxLabel) maxLabel = value;
      } else {
        x[feature++] = value * scale;
      }
    }
  }
  const numClasses = options.numClasses ?? Math.max(2, maxLabel + 1);
  return validateDataset({ name, x, y, n, exampleShape: [...exampleShape], numClasses });
}

function cleanCell(cell: string): string {
  const trimmed = cell.trim();
  return trimmed.length >= 2 && trimmed.startsWith('"') && trimmed.endsWith('"')
    ? trimmed.slice(1, -1).trim()
    : trimmed;
}

function isNumberCell(cell: string): boolean {
  // Number("") is 0 and Number("Infinity") is not finite: refuse both.
  return cell !== "" && Number.isFinite(Number(cell));
}

function resolveLabelColumn(column: "first" | "last" | number, numColumns: number, name: string): number {
  if (column === "first") return 0;
  if (column === "last") return numColumns - 1;
  if (!Number.isInteger(column) || column < 0 || column >= numColumns) {
    throw new FedsimError(
      ErrorCode.INVALID_CONFIG,
      `csv "${name}": labelColumn ${column} is outside the ${numColumns} columns (0-based)`,
    );
  }
  return column;
}

export interface CsvLoadOptions extends CsvOptions {
  /** For a single file: the share held out as the test set (default 0.2). */
  testFraction?: number;
  /** For a single file: seed of the train/test permutation (default 0). */
  seed?: number;
}

/**
 * Loads `path`: a directory with train.csv and test.csv, or one CSV file that is split into
 * train and test by a seeded permutation (`testFraction`, default 0.2).
 */
export async function loadCsvDataset(path: string, options: CsvLoadOptions = {}): Promise<TrainTest> {
  const absPath = resolve(path);
  if (!existsSync(absPath)) {
    throw new FedsimError(ErrorCode.DATA_NOT_FOUND, `csv dataset: ${absPath} does not exist`);
  }
  const baseName = options.name ?? "csv";
  if (statSync(absPath).isDirectory()) {
    const trainPath = join(absPath, "train.csv");
    const testPath = join(absPath, "test.csv");
    const missing = [trainPath, testPath].filter((p) => !existsSync(p));
    if (missing.length > 0) {
      throw new FedsimError(
        ErrorCode.DATA_NOT_FOUND,
        `csv dataset: directory ${absPath} needs train.csv and test.csv; missing ${missing.join(", ")}`,
      );
    }
    const [trainText, testText] = await Promise.all([
      readFile(trainPath, "utf8"),
      readFile(testPath, "utf8"),
    ]);
    let train = parseCsvDataset(trainText, { ...options, name: `${baseName}/train` });
    let test = parseCsvDataset(testText, { ...options, name: `${baseName}/test` });
    if (train.exampleShape.join("x") !== test.exampleShape.join("x")) {
      throw new FedsimError(
        ErrorCode.BAD_DATA,
        `csv dataset ${absPath}: train has examples [${train.exampleShape}], test [${test.exampleShape}]`,
      );
    }
    // Each file alone may miss the highest class; both sets must agree on the label space.
    const numClasses = Math.max(train.numClasses, test.numClasses);
    train = { ...train, numClasses };
    test = { ...test, numClasses };
    return { train, test, source: absPath };
  }

  const testFraction = options.testFraction ?? 0.2;
  if (!(testFraction > 0 && testFraction < 1)) {
    throw new FedsimError(
      ErrorCode.INVALID_CONFIG,
      `csv dataset: testFraction must be in (0, 1), got ${testFraction}`,
    );
  }
  const all = parseCsvDataset(await readFile(absPath, "utf8"), { ...options, name: baseName });
  const nTest = Math.round(all.n * testFraction);
  if (nTest < 1 || nTest >= all.n) {
    throw new FedsimError(
      ErrorCode.BAD_DATA,
      `csv dataset ${absPath}: ${all.n} rows are too few to hold out a test share of ${testFraction}`,
    );
  }
  const order = Int32Array.from({ length: all.n }, (_, i) => i);
  shuffleInPlace(order, createRng(deriveSeed(options.seed ?? 0, "csv-split")));
  return {
    train: subset(all, order.subarray(nTest), `${baseName}/train`),
    test: subset(all, order.subarray(0, nTest), `${baseName}/test`),
    source: absPath,
  };
}

/**
 * A node's own CSV training data: `train.csv` in a directory (a `test.csv` beside it is not
 * read), or every row of one file. Its label space ends at its highest label: the trainer widens
 * it to the model's classes.
 */
export async function loadCsvTrainSet(path: string, options: CsvOptions = {}): Promise<Dataset> {
  const absPath = resolve(path);
  const file = existsSync(absPath) && statSync(absPath).isDirectory() ? join(absPath, "train.csv") : absPath;
  if (!existsSync(file)) {
    throw new FedsimError(ErrorCode.DATA_NOT_FOUND, `csv training data: ${file} does not exist`);
  }
  return parseCsvDataset(await readFile(file, "utf8"), { ...options, name: options.name ?? "csv/train" });
}
