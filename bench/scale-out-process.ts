import { type ChildProcess, spawn } from "node:child_process";
import path from "node:path";
import { repoRoot } from "./paths.js";
import type { Host } from "./scale-out-hosts.js";

/** A process of the scale-out set-up: waits on what it prints, never on time. */
export interface Launched {
  waitFor(pattern: RegExp): Promise<RegExpMatchArray>;
  exited: Promise<number | null>;
  output(): string;
  /** Kills the process and the workers it forked (its own process group). */
  kill(): void;
}

/** The compiled CLI on a host, in a process group of its own; waits on what it prints. */
export function launch(host: Host, args: string[], log: (line: string) => void): Launched {
  const cli = path.join(repoRoot(), "dist", "cli", "index.js");
  return launchCommand(host, [process.execPath, cli, ...args], log);
}

/** Any command on a host, in a process group of its own (killed with everything it forked). */
export function launchCommand(host: Host, argv: string[], log: (line: string) => void): Launched {
  const [command, ...rest] = [...host.prefix, ...argv];
  const child: ChildProcess = spawn(command, rest, { stdio: ["ignore", "pipe", "pipe"], detached: true });
  let text = "";
  const watchers = new Set<() => void>();
  let closed = false;
  const onData = (chunk: Buffer) => {
    text += chunk.toString();
    for (const line of chunk.toString().split("\n")) if (line.trim()) log(`${host.name}: ${line}`);
    for (const check of [...watchers]) check();
  };
  child.stdout?.on("data", onData);
  child.stderr?.on("data", onData);
  const exited = new Promise<number | null>((resolve) => {
    child.once("close", (code) => {
      closed = true;
      for (const check of [...watchers]) check();
      resolve(code);
    });
  });
  return {
    waitFor: (pattern) =>
      new Promise((resolve, reject) => {
        const check = () => {
          const match = pattern.exec(text);
          if (match) {
            watchers.delete(check);
            resolve(match);
          } else if (closed) {
            watchers.delete(check);
            reject(new Error(`${host.name} exited before printing ${pattern}:\n${text}`));
          }
        };
        watchers.add(check);
        check();
      }),
    exited,
    output: () => text,
    kill: () => {
      if (closed || child.pid === undefined) return;
      try {
        process.kill(-child.pid, "SIGKILL");
      } catch {
        // Already gone.
      }
    },
  };
}
