import { type ChildProcess, spawn } from "node:child_process";
import { CLI, ROOT } from "./built-cli.js";

export interface CliExit {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** The compiled CLI in a child process, with waits on what it prints rather than on time. */
export interface CliProcess {
  child: ChildProcess;
  stdout(): string;
  stderr(): string;
  /** Resolves with the first match of `pattern` in the stream; rejects if the process ends first. */
  waitFor(pattern: RegExp, stream?: "stdout" | "stderr"): Promise<RegExpMatchArray>;
  done: Promise<CliExit>;
}

const running = new Set<ChildProcess>();
/** Children that lead a process group of their own (with the workers they fork). */
const leaders = new Set<ChildProcess>();

export interface SpawnOptions {
  /** Its own process group, so `signalGroup` reaches the processes it forks too (a pool's workers). */
  group?: boolean;
  /** A command to run the CLI under, e.g. ["ip", "netns", "exec", "ns1"]. */
  prefix?: string[];
}

export function spawnCli(args: string[], options: SpawnOptions = {}): CliProcess {
  const [command, ...rest] = [...(options.prefix ?? []), process.execPath, CLI, ...args];
  const child = spawn(command, rest, {
    cwd: ROOT,
    stdio: ["ignore", "pipe", "pipe"],
    detached: options.group === true,
  });
  running.add(child);
  if (options.group) leaders.add(child);
  const text = { stdout: "", stderr: "" };
  const watchers = new Set<() => void>();
  let closed = false;
  const onData = (stream: "stdout" | "stderr") => (chunk: Buffer) => {
    text[stream] += chunk.toString();
    for (const check of [...watchers]) check();
  };
  child.stdout?.on("data", onData("stdout"));
  child.stderr?.on("data", onData("stderr"));
  const done = new Promise<CliExit>((resolve, reject) => {
    child.once("error", reject);
    child.once("close", (code, signal) => {
      running.delete(child);
      closed = true;
      for (const check of [...watchers]) check();
      resolve({ code, signal, stdout: text.stdout, stderr: text.stderr });
    });
  });
  const waitFor = (pattern: RegExp, stream: "stdout" | "stderr" = "stderr") =>
    new Promise<RegExpMatchArray>((resolve, reject) => {
      const check = () => {
        const match = pattern.exec(text[stream]);
        if (match) {
          watchers.delete(check);
          resolve(match);
        } else if (closed) {
          watchers.delete(check);
          reject(new Error(`exited before printing ${pattern}:\n${text.stdout}\n${text.stderr}`));
        }
      };
      watchers.add(check);
      check();
    });
  return { child, stdout: () => text.stdout, stderr: () => text.stderr, waitFor, done };
}

/** Sends a signal to a process and everything in its group (spawned with `group: true`). */
export function signalGroup(cli: CliProcess, signal: NodeJS.Signals): void {
  const pid = cli.child.pid;
  if (pid === undefined) return;
  try {
    process.kill(-pid, signal);
  } catch {
    // The group is gone already.
  }
}

/** Kills every CLI process still running, and the groups of those that lead one (afterAll). */
export function killAllCli(): void {
  for (const child of running) child.kill("SIGKILL");
  for (const child of leaders) {
    try {
      if (child.pid !== undefined) process.kill(-child.pid, "SIGKILL");
    } catch {
      // Already gone.
    }
  }
  leaders.clear();
}
