import { CommanderError } from "commander";
import { ErrorCode, FedsimError } from "../common/errors.js";

const SUGGESTIONS: Partial<Record<ErrorCode, string>> = {
  [ErrorCode.BACKEND_UNAVAILABLE]: "run `fedsim doctor` to see which backends load here",
  [ErrorCode.DATA_NOT_FOUND]: "run `fedsim doctor` to see which datasets are available",
  [ErrorCode.INVALID_SCENARIO]: "see docs/SCENARIOS.md for the scenario format",
  [ErrorCode.INVALID_CONFIG]: "run the command with --help for its options",
};

/**
 * The one place that turns an error into output and an exit code: one line for the error, one
 * per invalid field, and a suggestion. 2 = bad input or configuration, 1 = anything else.
 */
export function handleError(err: unknown): number {
  if (err instanceof CommanderError) return err.exitCode;
  if (err instanceof FedsimError) {
    process.stderr.write(`error: ${err.code}: ${err.message}\n`);
    for (const line of err.details) process.stderr.write(`  - ${line}\n`);
    const hint = SUGGESTIONS[err.code];
    if (hint) process.stderr.write(`hint: ${hint}\n`);
    const inputCodes: string[] = [
      ErrorCode.INVALID_CONFIG,
      ErrorCode.INVALID_SCENARIO,
      ErrorCode.DATA_NOT_FOUND,
      ErrorCode.BAD_DATA,
      ErrorCode.BACKEND_UNAVAILABLE,
    ];
    return inputCodes.includes(err.code) ? 2 : 1;
  }
  process.stderr.write(`error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  return 1;
}
