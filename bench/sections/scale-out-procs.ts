/**
 * The processes of the scale-out section (bench/sections/scale-out.ts): a throwaway redis-server,
 * edges as real `fedsim coordinator --edge` processes, and a forked host of bare clients
 * (scale-out-worker.ts). Every wait is on something a process prints or sends, never on time.
 */
import { type ChildProcess, fork, spawn } from "node:child_process";
import { type EventEmitter, once } from "node:events";
import { readFileSync } from "node:fs";
import { createServer, type Socket } from "node:net";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { repoRoot } from "../paths.js";
import type { ClientHostMessage, ClientHostSpec } from "./scale-out-worker.js";

export interface Child {
  pid: number;
  /** Resident set size now, from /proc. */
  rss(): number;
  stop(): Promise<void>;
}

/** Resident set size of a process, from /proc/PID/status. */
export function rssOf(pid: number): number {
  const kb = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return kb ? Number(kb[1]) * 1024 : 0;
}

/** Resolves with the first match of `pattern` in what the stream prints; rejects if the process exits first. */
function waitForOutput(child: ChildProcess, stream: "stdout" | "stderr", pattern: RegExp) {
  return new Promise<RegExpMatchArray>((resolve, reject) => {
    let out = "";
    const onData = (chunk: Buffer) => {
      // Only a tail: a long-lived process keeps printing, and its output is read, never stored.
      out = (out + chunk.toString()).slice(-20_000);
      const match = pattern.exec(out);
      if (match) {
        child.off("exit", onExit);
        resolve(match);
      }
    };
    const onExit = (code: number | null) =>
      reject(new Error(`exited (${code}) before printing ${pattern}: ${out}`));
    child[stream]?.on("data", onData);
    child.once("exit", onExit);
  });
}

function stopper(child: ChildProcess, signal: NodeJS.Signals): () => Promise<void> {
  return async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = once(child, "exit");
    child.kill(signal);
    await exited;
  };
}

/** Debian's redis-server on a free loopback port, without persistence. */
export async function startRedis(): Promise<Child & { url: string }> {
  const probe = createServer().listen(0, "127.0.0.1");
  await once(probe, "listening");
  const port = (probe.address() as { port: number }).port;
  await new Promise((resolve) => probe.close(resolve));
  const child = spawn(
    "redis-server",
    ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  child.stderr?.resume();
  await waitForOutput(child, "stdout", /Ready to accept connections/);
  return {
    url: `redis://127.0.0.1:${port}`,
    pid: child.pid ?? 0,
    rss: () => rssOf(child.pid ?? 0),
    stop: stopper(child, "SIGKILL"),
  };
}

export interface EdgeProcess extends Child {
  url: string;
  /** Resident set size right after a full garbage collection in the edge (gc-on-signal.ts). */
  rssAfterGc(): Promise<number>;
}

/**
 * `fedsim coordinator --edge` from the compiled CLI, admitting anyone (open admission), with
 * gc-on-signal.ts preloaded. The CLI logs on stderr (not stdout: waiting for its address on
 * stdout never ends); the edge prints its clients' address once its link to the coordinator is up.
 */
export async function startEdgeProcess(
  redisUrl: string,
  coordinatorUrl: string,
  edgeId: string,
): Promise<EdgeProcess> {
  const cli = path.join(repoRoot(), "dist", "cli", "index.js");
  const preload = pathToFileURL(path.join(import.meta.dirname, "gc-on-signal.js")).href;
  const args = ["coordinator", "--edge", "--redis", redisUrl, "--coordinator-url", coordinatorUrl];
  const child = spawn(
    process.execPath,
    [
      "--expose-gc",
      "--import",
      preload,
      cli,
      ...args,
      ...["--edge-id", edgeId, "--insecure-open", "--host", "127.0.0.1", "--port", "0"],
    ],
    { stdio: ["ignore", "ignore", "pipe"] },
  );
  const [, url] = await waitForOutput(child, "stderr", /clients connect to (http:\/\/\S+)/);
  return {
    url,
    pid: child.pid ?? 0,
    rss: () => rssOf(child.pid ?? 0),
    async rssAfterGc() {
      const printed = waitForOutput(child, "stderr", /gc-on-signal: rss (\d+)/);
      child.kill("SIGUSR2");
      return Number((await printed)[1]);
    },
    stop: stopper(child, "SIGTERM"),
  };
}

/** Forks scale-out-worker.js with `spec`; resolves once its clients were admitted (or gave up). */
type Ready = Extract<ClientHostMessage, { type: "ready" }>;
type Report = Extract<ClientHostMessage, { type: "report" }>;

export async function startClientHost(
  spec: ClientHostSpec,
): Promise<Child & { ready: Ready; report(): Promise<Report> }> {
  const child = fork(path.join(import.meta.dirname, "scale-out-worker.js"), [], {
    env: { ...process.env, FEDSIM_SCALE_OUT_WORKER: JSON.stringify(spec) },
    stdio: ["ignore", "inherit", "inherit", "ipc"],
  });
  const ready = await new Promise<Ready>((resolve, reject) => {
    child.once("message", (m) => resolve(m as Ready));
    child.once("exit", (code) =>
      reject(new Error(`client host exited (${code}) before its clients were ready`)),
    );
  });
  return {
    ready,
    pid: child.pid ?? 0,
    rss: () => rssOf(child.pid ?? 0),
    report: () =>
      new Promise<Report>((resolve, reject) => {
        child.once("message", (m) => resolve(m as Report));
        if (!child.send({ type: "report" })) reject(new Error("the client host is gone"));
      }),
    async stop() {
      if (child.exitCode !== null) return;
      const exited = once(child, "exit");
      child.send({ type: "stop" });
      await exited;
    },
  };
}

/**
 * Every byte a server's TCP connections have read (HTTP upgrade, WebSocket frames, everything),
 * closed connections included: what the process took in on that server's port.
 */
export class IngressCounter {
  private readonly sockets = new Set<Socket>();
  private closedBytes = 0;

  constructor(server: EventEmitter) {
    server.on("connection", (socket: Socket) => {
      this.sockets.add(socket);
      socket.once("close", () => {
        this.sockets.delete(socket);
        this.closedBytes += socket.bytesRead;
      });
    });
  }

  total(): number {
    let bytes = this.closedBytes;
    for (const s of this.sockets) bytes += s.bytesRead;
    return bytes;
  }
}
