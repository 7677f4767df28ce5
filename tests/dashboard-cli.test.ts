import { type ChildProcess, spawn } from "node:child_process";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { CLI, ensureBuilt, ROOT } from "./helpers/built-cli.js";
import { parsePrometheus } from "./helpers/observe.js";

const TOKEN = "cli-dashboard-token-0123";

/** The compiled CLI with its stderr collected; resolves a line matching `pattern` once printed. */
function start(args: string[]) {
  const child = spawn(process.execPath, [CLI, ...args], { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] });
  let stderr = "";
  const waiters: (() => void)[] = [];
  child.stderr.on("data", (chunk) => {
    stderr += chunk;
    for (const w of [...waiters]) w();
  });
  const exited = new Promise<number | null>((resolve) => child.once("close", resolve));
  const line = (pattern: RegExp) =>
    new Promise<RegExpMatchArray>((resolve, reject) => {
      const check = () => {
        const m = stderr.match(pattern);
        if (m) return resolve(m);
      };
      waiters.push(check);
      check();
      exited.then((code) => reject(new Error(`exited ${code} before ${pattern}:\n${stderr}`)));
    });
  return { child, line, exited, stderr: () => stderr };
}

describe("fedsim coordinator --dashboard", () => {
  beforeAll(ensureBuilt, 600_000);
  const children: ChildProcess[] = [];
  afterEach(() => {
    for (const c of children.splice(0)) if (c.exitCode === null) c.kill("SIGKILL");
  });

  it("prints the dashboard's URL with its token, and serves it and /metrics only to that token", async () => {
    const coordinator = start([
      "coordinator",
      "--insecure-open",
      "--port",
      "0",
      "--model",
      "tiny-mlp",
      "--backend",
      "cpu",
      "--rounds",
      "1",
      "--dashboard",
      "--dashboard-token",
      TOKEN,
    ]);
    children.push(coordinator.child);
    const [, page] = await coordinator.line(/coordinator: dashboard: (\S+)/);
    const [, metrics] = await coordinator.line(/coordinator: Prometheus metrics: (\S+)/);
    expect(page).toMatch(new RegExp(`^http://127\\.0\\.0\\.1:\\d+/dashboard/\\?token=${TOKEN}$`));

    const opened = await fetch(page);
    expect(opened.status).toBe(200);
    expect(await opened.text()).toContain("<title>fedsim dashboard</title>");
    // The compiled package serves the page's files it copied into dist.
    const app = await fetch(new URL("app.js", page), { headers: { Authorization: `Bearer ${TOKEN}` } });
    expect(app.status).toBe(200);
    expect((await fetch(metrics)).status).toBe(401);
    const scraped = await fetch(metrics, { headers: { Authorization: `Bearer ${TOKEN}` } });
    expect(parsePrometheus(await scraped.text()).get("fedsim_rounds_total")).toBe(0);
  });

  it("refuses a dashboard token shorter than 16 characters, naming the option (exit 2)", async () => {
    const r = start([
      "coordinator",
      "--insecure-open",
      "--port",
      "0",
      "--dashboard",
      "--dashboard-token",
      "short",
    ]);
    children.push(r.child);
    expect(await r.exited).toBe(2);
    expect(r.stderr()).toContain("--dashboard-token");
  });
});
