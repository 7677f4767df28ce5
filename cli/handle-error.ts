import { CommanderError } from "commander";
import { ErrorCode, FedsimError } from "../common/errors.js";

const SUGGESTIONS: Partial<Record<ErrorCode, string>> = {
  [ErrorCode.BACKEND_UNAVAILABLE]: "run `fedsim doctor` to see which backends load here",
  [ErrorCode.DATA_NOT_FOUND]: "run `fedsim doctor` to see which datasets are available",
  [ErrorCode.INVALID_SCENARIO]: "see docs/SCENARIOS.md for the scenario format",
  [ErrorCode.INVALID_CONFIG]: "run the command with --help for its options",
  [ErrorCode.WRONG_RUN]: "copy the `fedsim pool` line the coordinator printed for its run",
  [ErrorCode.PORT_IN_USE]: "choose another --port, or stop the process that holds this one",
  [ErrorCode.REDIS_UNREACHABLE]:
    "start redis-server where --redis points (docs/SCALE-OUT.md), or give it longer with --redis-wait",
  [ErrorCode.TLS_UNTRUSTED]: 'README, "TLS with your own CA", makes a CA and a certificate clients can trust',
  [ErrorCode.EXPECTATION_FAILED]:
    "the run itself finished; its numbers are in the summary above (and in --out DIR); loosen the scenario's expect block or improve the run",
};

/** Refusals of what the user typed or wrote: exit code 2. */
const INPUT_CODES: readonly string[] = [
  ErrorCode.INVALID_CONFIG,
  ErrorCode.INVALID_SCENARIO,
  ErrorCode.DATA_NOT_FOUND,
  ErrorCode.BAD_DATA,
  ErrorCode.BACKEND_UNAVAILABLE,
  ErrorCode.PORT_IN_USE,
  ErrorCode.TLS_UNTRUSTED,
  ErrorCode.WRONG_RUN,
];

/** Commander's own refusals of the command line: unknown option, missing argument, and the like. */
const COMMANDER_INPUT_CODES: readonly string[] = [
  "commander.unknownOption",
  "commander.unknownCommand",
  "commander.excessArguments",
  "commander.missingArgument",
  "commander.missingMandatoryOptionValue",
  "commander.optionMissingArgument",
  "commander.invalidArgument",
  "commander.conflictingOption",
];

/** A run that finished but missed its expectations: not bad input (2), not a crash (1). */
export const EXIT_EXPECTATION_FAILED = 3;

/**
 * The one place that turns an error into output and an exit code: one line for the error, one
 * per invalid field, and a suggestion. 2 = bad input or configuration, 3 = failed expectations,
 * 1 = anything else.
 */
export function handleError(err: unknown): number {
  if (err instanceof CommanderError) return commanderExit(err);
  if (err instanceof FedsimError) {
    process.stderr.write(`error: ${err.code}: ${err.message}\n`);
    for (const line of err.details) process.stderr.write(`  - ${line}\n`);
    const hint = SUGGESTIONS[err.code];
    if (hint) process.stderr.write(`hint: ${hint}\n`);
    if (err.code === ErrorCode.EXPECTATION_FAILED) return EXIT_EXPECTATION_FAILED;
    return INPUT_CODES.includes(err.code) ? 2 : 1;
  }
  process.stderr.write(`error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  return 1;
}

/**
 * Help and --version end with code 0 and have printed already. Refusals get the same shape as
 * any other bad option: one line naming it (commander's own "did you mean" folded in), exit 2.
 */
function commanderExit(err: CommanderError): number {
  if (err.exitCode === 0) return 0;
  if (!COMMANDER_INPUT_CODES.includes(err.code)) {
    process.stderr.write(`${err.message}\n`);
    return err.exitCode;
  }
  const text = err.message
    .replace(/^error: /, "")
    .replace(/\s*\(Did you mean (.+)\?\)\s*$/s, "; did you mean $1?")
    .replace(/\n/g, " ");
  process.stderr.write(`error: ${ErrorCode.INVALID_CONFIG}: ${text}\n`);
  process.stderr.write("hint: run the command with --help for its options\n");
  return 2;
}
