import { describeError, FedsimError } from "../common/errors.js";

/**
 * Runs a bench script's main: a refusal (FedsimError) prints what to change; anything else is a
 * bug, so its stack is shown. Either way the process exits 1.
 */
export function runScript(name: string, main: () => Promise<void>): void {
  main().catch((err: unknown) => {
    const text =
      err instanceof FedsimError
        ? describeError(err)
        : err instanceof Error
          ? (err.stack ?? err.message)
          : String(err);
    process.stderr.write(`${name}: ${text}\n`);
    process.exit(1);
  });
}
