import { type CliProcess, spawnCli } from "./cli-process.js";

/**
 * Edges as real `fedsim coordinator --edge` processes (the compiled CLI), so that a test can kill
 * one outright; each is started in turn and its port read from the line it prints.
 */
export async function spawnEdgeProcesses(
  redisUrl: string,
  coordinatorUrl: string,
  ids: readonly string[],
): Promise<{ edges: Map<string, CliProcess>; ports: number[] }> {
  const edges = new Map<string, CliProcess>();
  const ports: number[] = [];
  for (const id of ids) {
    const edge = spawnCli([
      "coordinator",
      "--edge",
      "--redis",
      redisUrl,
      "--coordinator-url",
      coordinatorUrl,
      "--edge-id",
      id,
      "--insecure-open",
      "--port",
      "0",
    ]);
    const match = await edge.waitFor(/clients connect to http:\/\/127\.0\.0\.1:(\d+)/);
    edges.set(id, edge);
    ports.push(Number(match[1]));
  }
  return { edges, ports };
}
