/**
 * A forked client host for bench/sections/load-run.ts (`fork(dist/bench/sections/load-worker.js)` with the spec in
 * FEDSIM_LOAD_WORKER). Talks to its parent over IPC:
 *   worker → parent: { type: "ready", report } once its clients are admitted;
 *                    { type: "stats", … } when asked, and when told to stop.
 *   parent → worker: { type: "stats" } | { type: "stop" }.
 * It exits when told to stop or when its parent goes away (the IPC channel closes).
 */
import { initBackend } from "../../common/tf/backend.js";
import { type HostClientsOptions, HostedClients, type HostedReport } from "./load-clients.js";
import { MemorySampler } from "./probe.js";

export interface WorkerSpec extends HostClientsOptions {
  backend: "cpu" | "wasm";
}

export type WorkerMessage =
  | { type: "ready"; report: HostedReport }
  | {
      type: "stats";
      errors: number;
      errorSamples: string[];
      roundsTrained: number;
      peakRss: number;
      peakHeap: number;
    };

async function main(): Promise<void> {
  const spec = JSON.parse(process.env["FEDSIM_LOAD_WORKER"] ?? "null") as WorkerSpec | null;
  if (!spec || typeof process.send !== "function") {
    process.stderr.write(
      "load-worker: run me through bench/sections/load-run.ts (fork with FEDSIM_LOAD_WORKER)\n",
    );
    process.exit(2);
  }
  const send = (message: WorkerMessage) => process.send?.(message);
  await initBackend(spec.backend);
  const { hosted, report } = await HostedClients.start(spec);
  const sampler = new MemorySampler().start();
  const stats = (): WorkerMessage => ({
    type: "stats",
    errors: hosted.errors.count,
    errorSamples: hosted.errors.samples,
    roundsTrained: hosted.roundsTrained(),
    peakRss: sampler.peak.rss,
    peakHeap: sampler.peak.heapUsed,
  });
  send({ type: "ready", report });
  process.on("message", (message: { type?: string }) => {
    if (message?.type === "stats") send(stats());
    if (message?.type === "stop") {
      hosted.close();
      sampler.stop();
      process.disconnect();
      setTimeout(() => process.exit(0), 200).unref();
    }
  });
  process.once("disconnect", () => {
    hosted.close();
    setTimeout(() => process.exit(0), 200).unref();
  });
}

main().catch((err: unknown) => {
  process.stderr.write(`load-worker: ${err instanceof Error ? err.stack : String(err)}\n`);
  process.exit(1);
});
