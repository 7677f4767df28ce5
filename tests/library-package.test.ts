import { existsSync, lstatSync } from "node:fs";
import { copyFile, mkdir, readdir, readFile, rm, writeFile } from "node:fs/promises";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CLI, ROOT } from "./helpers/built-cli.js";
import { expectSuccess, installOffline, packFedsim, run, tscIn } from "./helpers/packed-fedsim.js";

/**
 * fedsim as a library, the way a user gets it: packed with `npm pack`, installed into a project
 * outside this repository, imported by name. The exports map, the type declarations, the
 * examples in docs/API.md (tests/public-api.test.ts holds the docs to them) and `fedsim new`'s
 * template cannot drift from what the package really ships.
 */
describe("the packed package", () => {
  let tarball = "";
  let workDir = "";

  beforeAll(async () => {
    ({ tarball, workDir } = await packFedsim());
  }, 300_000);

  afterAll(async () => {
    if (workDir) await rm(workDir, { recursive: true, force: true });
  });

  it("installs into another project, type-checks its examples and runs a federation with a custom strategy, model, dataset and client", async () => {
    const project = path.join(workDir, "consumer");
    await mkdir(project);
    await writeFile(
      path.join(project, "package.json"),
      JSON.stringify({
        name: "fedsim-consumer",
        private: true,
        type: "module",
        dependencies: { fedsim: `file:${tarball}` },
        devDependencies: { typescript: "^5.9.0", "@types/node": "^20.19.0" },
      }),
    );
    await writeFile(
      path.join(project, "tsconfig.json"),
      JSON.stringify({
        compilerOptions: {
          target: "ES2022",
          module: "NodeNext",
          moduleResolution: "NodeNext",
          types: ["node"],
          strict: true,
          skipLibCheck: true,
          outDir: "dist",
        },
        include: ["*.ts"],
      }),
    );
    for (const file of await readdir(path.join(ROOT, "examples"))) {
      await copyFile(path.join(ROOT, "examples", file), path.join(project, file));
    }
    await installOffline(project);

    // A real install (not a link back into this repository), holding only what "files" ships.
    const installed = path.join(project, "node_modules", "fedsim");
    expect(lstatSync(installed).isSymbolicLink()).toBe(false);
    expect(existsSync(path.join(installed, "dist", "scenarios", "api.d.ts"))).toBe(true);
    expect(existsSync(path.join(installed, "templates", "project", "src", "strategy.ts"))).toBe(true);
    expect(existsSync(path.join(installed, "tests"))).toBe(false);
    expect(existsSync(path.join(installed, "dist", "bench"))).toBe(false);

    // The examples compile against the installed declarations, strict.
    expectSuccess(
      await run(process.execPath, [tscIn(project), "-p", "."], project),
      "tsc in the consumer project",
    );

    // The exports map is the contract: deep imports are refused.
    const deep = await run(process.execPath, ["-e", 'import("fedsim/dist/common/registry.js")'], project);
    expect(deep.code).not.toBe(0);
    expect(deep.stderr).toContain("ERR_PACKAGE_PATH_NOT_EXPORTED");

    // Two forked pool processes import the scenario module to see the client and dataset.
    const ran = expectSuccess(
      await run(process.execPath, [path.join("dist", "run.js")], project),
      "node dist/run.js",
    );
    const result = JSON.parse(ran.stdout.trim().split("\n").at(-1) ?? "{}");
    expect(result.strategy).toBe("capped-fedavg");
    expect(result.finalAccuracy).toBeGreaterThan(result.initialAccuracy);
    // The client's own fit and evaluate metrics, aggregated by the strategy's functions.
    expect(result.fitMetrics.trainAccuracy).toBeGreaterThan(0);
    expect(result.federatedMetrics.errorRate).toBeGreaterThanOrEqual(0);
    expect(result.federatedMetrics.errorRate).toBeLessThan(1);
    expect(result.strategyMetrics.stepNorm).toBeGreaterThan(0);
    // The scenario's hook ran after every round.
    expect(ran.stderr).toMatch(/round 3: accuracy \d/);
  }, 240_000);

  it("fedsim new scaffolds a project that installs, starts and passes its own tests", async () => {
    const project = path.join(workDir, "my-federation");
    const created = expectSuccess(
      await run(
        process.execPath,
        [CLI, "new", "my-federation", "--dir", project, "--fedsim", `file:${tarball}`],
        ROOT,
      ),
      "fedsim new",
    );
    expect(created.stdout).toContain("src/strategy.ts");
    const manifest = JSON.parse(await readFile(path.join(project, "package.json"), "utf8"));
    expect(manifest.dependencies.fedsim).toBe(`file:${tarball}`);
    expect(await readFile(path.join(project, "README.md"), "utf8")).toContain("What to edit first");
    expect(existsSync(path.join(project, ".gitignore"))).toBe(true);

    // A second `fedsim new` into the same, now non-empty, directory is refused.
    const again = await run(process.execPath, [CLI, "new", "my-federation", "--dir", project], ROOT);
    expect(again.code).not.toBe(0);
    expect(again.stderr).toContain("not empty");

    await installOffline(project);
    const npm = process.platform === "win32" ? "npm.cmd" : "npm";
    const started = expectSuccess(await run(npm, ["start", "--silent"], project), "npm start");
    expect(started.stdout).toMatch(/final accuracy \d/);
    const summary = JSON.parse(await readFile(path.join(project, "runs", "latest", "summary.json"), "utf8"));
    expect(summary.strategy).toBe("capped-fedavg");
    expect(summary.rounds).toHaveLength(3);

    const tested = expectSuccess(await run(npm, ["test", "--silent"], project), "npm test");
    expect(tested.stdout).toMatch(/# pass 3/);
    expect(tested.stdout).toMatch(/# fail 0/);
  }, 300_000);
});
