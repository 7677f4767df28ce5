import { type ChildProcess, spawn } from "node:child_process";
import { CLI, ROOT } from "./built-cli.js";

/** A `fedsim client` in its own process, as a user starts one on a device. */
export interface ClientProcess {
  child: ChildProcess;
  /** The id the coordinator gave it, once it has been admitted. */
  clientId: Promise<string>;
  /** Everything it printed (its log goes to stderr). */
  output(): string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** Starts `fedsim client` on partition `index`/`count` of the embedded MNIST. */
export function spawnClientProcess(url: string, index: number, count: number): ClientProcess {
  const child = spawn(
    process.execPath,
    [
      CLI,
      "client",
      "--server",
      url,
      "--dataset",
      "mnist",
      "--partition",
      `${index}/${count}`,
      "--backend",
      "cpu",
    ],
    { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] },
  );
  let text = "";
  let resolveId: (id: string) => void = () => {};
  let rejectId: (err: Error) => void = () => {};
  const clientId = new Promise<string>((resolve, reject) => {
    resolveId = resolve;
    rejectId = reject;
  });
  clientId.catch(() => undefined);
  const collect = (chunk: Buffer) => {
    text += chunk.toString();
    const match = /connected as (\S+)/.exec(text);
    if (match) resolveId(match[1]);
  };
  child.stdout?.on("data", collect);
  child.stderr?.on("data", collect);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once("close", (code, signal) => {
      rejectId(new Error(`client ${index}/${count} exited (${code ?? signal}) before joining:\n${text}`));
      resolve({ code, signal });
    });
  });
  return { child, clientId, output: () => text, exited };
}
