#!/usr/bin/env node
/**
 * The native kernels' install step (package.json "prepare", so `npm install` and `npm ci` run it after
 * the TypeScript build): on Debian and Ubuntu it installs the missing system packages (g++, libdnnl-dev)
 * when it runs as root or may sudo without a password, then builds the addon (build.mjs). Everyone else
 * gets one line saying what they lose and the command that gets it back.
 *
 * It never fails `npm install` and never waits for input: apt-get runs with no terminal, `sudo -n` never
 * prompts, and each apt-get call has a time limit. FEDSIM_NO_APT=1 keeps it from installing anything;
 * FEDSIM_SKIP_NATIVE=1 skips the native kernels altogether.
 */
import { buildNative, builtLine } from "./build.mjs";
import { wasmNotice } from "./notice.mjs";
import { gatherFacts, installSystemPackages, planSystemPackages } from "./system-packages.mjs";

async function setup() {
  if (process.env.FEDSIM_SKIP_NATIVE === "1") {
    console.log("fedsim native kernels: not built (FEDSIM_SKIP_NATIVE=1); fedsim will train on wasm");
    return;
  }
  const plan = planSystemPackages(await gatherFacts());
  if (plan.action === "notice") {
    console.log(wasmNotice(plan.reason, plan.remedy));
    return;
  }
  if (plan.action === "install") {
    const how = plan.sudo ? "sudo apt-get" : "apt-get";
    console.log(
      `fedsim native kernels: installing ${plan.packages.join(" ")} with ${how} (FEDSIM_NO_APT=1 skips this)`,
    );
    const installed = await installSystemPackages(plan);
    if (!installed.ok) {
      console.log(wasmNotice(`apt-get failed: ${installed.detail}`, plan.command));
      return;
    }
  }
  const result = await buildNative();
  console.log(result.ok ? builtLine(result) : wasmNotice(result.reason));
}

try {
  await setup();
} catch (err) {
  console.log(wasmNotice(`unexpected error: ${String(err?.message ?? err)}`, "npm run build:native"));
}
process.exitCode = 0;
