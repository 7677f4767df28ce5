#!/usr/bin/env node
import { Command } from "commander";
import { clientCommand } from "./commands/client.js";
import { clientsCommand } from "./commands/clients.js";
import { compareCommand } from "./commands/compare.js";
import { coordinatorCommand } from "./commands/coordinator.js";
import { doctorCommand } from "./commands/doctor.js";
import { keygenCommand } from "./commands/keygen.js";
import { newCommand } from "./commands/new.js";
import { poolCommand } from "./commands/pool.js";
import { poolWorkerCommand } from "./commands/pool-worker.js";
import { privacyCommand } from "./commands/privacy.js";
import { reportCommand } from "./commands/report.js";
import { runCommand } from "./commands/run.js";
import { handleError } from "./handle-error.js";

/** Commander's refusals are printed by handleError, in the shape of every other bad option. */
const quietErrors = { outputError: () => {} };

/** The CLI only assembles commands; each command calls the same library functions tests use. */
const program = new Command("fedsim")
  .description("federated learning on Node.js: simulate a federation, then run it on real client nodes")
  .version("0.1.0");

program
  .addCommand(runCommand())
  .addCommand(newCommand())
  .addCommand(coordinatorCommand())
  .addCommand(clientCommand())
  .addCommand(clientsCommand())
  .addCommand(doctorCommand())
  .addCommand(keygenCommand())
  .addCommand(privacyCommand())
  .addCommand(reportCommand())
  .addCommand(compareCommand())
  .addCommand(poolCommand())
  .addCommand(poolWorkerCommand(), { hidden: true });

/** addCommand does not pass settings down: every command, at any depth, throws instead of exiting. */
function quiet(cmd: Command): void {
  cmd.exitOverride().configureOutput(quietErrors);
  for (const sub of cmd.commands) quiet(sub);
}
quiet(program);

try {
  await program.parseAsync(process.argv);
  // Socket.IO and tfjs may keep handles open; a finished command ends the process.
  process.exit(0);
} catch (err) {
  process.exit(handleError(err));
}
