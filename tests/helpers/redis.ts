import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll } from "vitest";

/**
 * A throwaway redis-server (Debian's) on a free loopback port, with no persistence. `stop` and
 * `start` again on the same port simulate a Redis restart. Readiness is Redis' own "Ready to
 * accept connections" line, never a sleep.
 */
export class TestRedis {
  private child: ChildProcess | null = null;

  private constructor(readonly port: number) {}

  /** A free port reserved for a Redis that is not running yet: `start()` brings it up there later. */
  static async notYetStarted(): Promise<TestRedis> {
    return new TestRedis(await freePort());
  }

  static async start(): Promise<TestRedis> {
    const redis = new TestRedis(await freePort());
    await redis.start();
    return redis;
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  private extraArgs: string[] = [];

  /** Starts redis-server on this port; a restart without arguments keeps the first start's. */
  async start(extraArgs?: string[]): Promise<void> {
    if (extraArgs) this.extraArgs = extraArgs;
    const child = spawn(
      "redis-server",
      [
        "--port",
        String(this.port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        ...this.extraArgs,
      ],
      { stdio: ["ignore", "pipe", "pipe"] },
    );
    this.child = child;
    await new Promise<void>((resolve, reject) => {
      let out = "";
      child.stdout?.on("data", (chunk: Buffer) => {
        out += chunk.toString();
        if (out.includes("Ready to accept connections")) resolve();
      });
      child.once("exit", (code) => reject(new Error(`redis-server exited (${code}): ${out.slice(-500)}`)));
      child.once("error", reject);
    });
  }

  async stop(): Promise<void> {
    const child = this.child;
    this.child = null;
    if (!child || child.exitCode !== null) return;
    const exited = once(child, "exit");
    child.kill("SIGKILL");
    await exited;
  }
}

/** A port that was free a moment ago (Redis cannot listen on port 0 and report it). */
async function freePort(): Promise<number> {
  const server = createServer();
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const address = server.address();
  const port = typeof address === "object" && address ? address.port : 0;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/**
 * A throwaway Redis Cluster of `size` masters (Debian's redis-server and redis-cli) on free
 * loopback ports, formed with `redis-cli --cluster create`, with its files in a temporary folder.
 * Coverage is not required, so the cluster keeps serving when one node is stopped.
 */
export class TestRedisCluster {
  private constructor(
    readonly nodes: TestRedis[],
    private readonly dir: string,
  ) {}

  static async start(size = 3): Promise<TestRedisCluster> {
    const dir = mkdtempSync(path.join(tmpdir(), "fedsim-redis-cluster-"));
    const nodes: TestRedis[] = [];
    for (let i = 0; i < size; i++) {
      const node = await TestRedis.notYetStarted();
      await node.start([
        "--cluster-enabled",
        "yes",
        "--cluster-config-file",
        path.join(dir, `nodes-${node.port}.conf`),
        "--cluster-node-timeout",
        "1000",
        "--cluster-require-full-coverage",
        "no",
        "--dir",
        dir,
      ]);
      nodes.push(node);
    }
    const cluster = new TestRedisCluster(nodes, dir);
    await run("redis-cli", [
      "--cluster",
      "create",
      ...nodes.map((n) => `127.0.0.1:${n.port}`),
      "--cluster-replicas",
      "0",
      "--cluster-yes",
    ]);
    return cluster;
  }

  /** The node most pub/sub subscriptions are held on (CLIENT LIST), so that stopping it cuts some. */
  async busiestSubscriberNode(): Promise<TestRedis> {
    let best = this.nodes[0];
    let most = -1;
    for (const node of this.nodes) {
      const list = await run("redis-cli", ["-p", String(node.port), "CLIENT", "LIST"]);
      const subscribed = list.split("\n").filter((line) => /\b(p?sub)=[1-9]/.test(line)).length;
      if (subscribed > most) {
        most = subscribed;
        best = node;
      }
    }
    return best;
  }

  /** Every node's URL, comma-separated: what `--redis` takes for a cluster. */
  get url(): string {
    return this.nodes.map((n) => n.url).join(",");
  }

  async stop(): Promise<void> {
    await Promise.all(this.nodes.map((n) => n.stop()));
    rmSync(this.dir, { recursive: true, force: true });
  }
}

async function run(command: string, args: string[]): Promise<string> {
  const child = spawn(command, args, { stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  child.stdout?.on("data", (c: Buffer) => {
    out += c.toString();
  });
  child.stderr?.on("data", (c: Buffer) => {
    out += c.toString();
  });
  const [code] = (await once(child, "exit")) as [number | null];
  if (code !== 0) throw new Error(`${command} ${args.join(" ")} exited ${code}: ${out.slice(-1000)}`);
  return out;
}

/**
 * One Redis for a test file, started before its tests and stopped after them; call it at the top
 * level. The handle's URL is read when a test runs, once the Redis is up.
 */
export function useRedis(): { readonly url: string } {
  let redis: TestRedis | null = null;
  beforeAll(async () => {
    redis = await TestRedis.start();
  }, 120_000);
  afterAll(async () => {
    await redis?.stop();
  });
  return {
    get url() {
      if (!redis) throw new Error("useRedis: the file's Redis has not started");
      return redis.url;
    },
  };
}
