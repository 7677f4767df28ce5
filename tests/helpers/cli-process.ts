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

export function spawnCli(args: string[]): CliProcess {
  const child = spawn(process.execPath, [CLI, ...args], { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] });
  running.add(child);
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

/** Kills every CLI process still running (afterAll). */
export function killAllCli(): void {
  for (const child of running) child.kill("SIGKILL");
}
