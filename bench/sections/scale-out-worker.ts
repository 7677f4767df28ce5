/**
 * A forked host of bare clients for bench/sections/scale-out.ts (`fork(scale-out-worker.js)` with
 * the spec in FEDSIM_SCALE_OUT_WORKER): raw Socket.IO connections that complete the real hello
 * and admission, and, when asked, answer every fit with one fixed, valid update (no training), so
 * the traffic is the protocol's own. Talks to its parent over IPC:
 *   worker → parent: { type: "ready", … } once every connection was admitted or gave up, and
 *                    { type: "report", … } when asked;
 *   parent → worker: { type: "report" } | { type: "stop" }.
 * It exits when told to stop or when its parent goes away.
 */
import { io, type Socket } from "socket.io-client";
import { lenientParser } from "../../common/net/lenient-parser.js";
import {
  type ClientToServerEvents,
  type FitInstructions,
  PROTOCOL_VERSION,
  type ServerToClientEvents,
} from "../../common/protocol.js";
import { float32ToBytes, totalSize } from "../../common/weights.js";

export interface ClientHostSpec {
  /** Client i connects to urls[i mod urls.length]. */
  urls: string[];
  count: number;
  /** Handshakes in flight at once: all at once would overflow the listen backlog. */
  concurrency: number;
  /** Answer fits with a fixed update of this value in every coordinate; null: hold the connection only. */
  fitValue: number | null;
  /** The example count every update reports. */
  numExamples: number;
  /**
   * Updates on their way at once. One process sends for every client: without a bound, each
   * masked WebSocket frame of every reply would be queued in memory at the same time.
   */
  uploads: number;
}

export type ClientHostMessage =
  | { type: "ready"; admitted: number; failed: number; errorSamples: string[]; rss: number }
  | { type: "report"; answered: number; failed: number; errorSamples: string[]; rss: number };

type BareSocket = Socket<ServerToClientEvents, ClientToServerEvents>;

/** Handshake and fit acknowledgements wait this long before counting as failures. */
const ACK_TIMEOUT_MS = 600_000;

async function main(): Promise<void> {
  const spec = JSON.parse(process.env["FEDSIM_SCALE_OUT_WORKER"] ?? "null") as ClientHostSpec | null;
  if (!spec || typeof process.send !== "function") {
    process.stderr.write("scale-out-worker: run me through bench/sections/scale-out.ts\n");
    process.exit(2);
  }
  const sockets: BareSocket[] = [];
  const errors: string[] = [];
  let failed = 0;
  const fail = (what: string) => {
    failed++;
    if (errors.length < 5) errors.push(what);
  };
  const fits = new FitQueue(spec, fail);
  let next = 0;
  const opener = async () => {
    while (next < spec.count) {
      const i = next++;
      try {
        sockets.push(await admit(spec.urls[i % spec.urls.length], fits));
      } catch (err) {
        fail(`client ${i}: ${err instanceof Error ? err.message : String(err)}`);
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(spec.concurrency, spec.count) }, opener));
  const stop = () => {
    for (const s of sockets) s.disconnect();
    setTimeout(() => process.exit(0), 200).unref();
  };
  process.on("message", (message: { type?: string }) => {
    if (message?.type === "stop") stop();
    if (message?.type === "report") {
      const report: ClientHostMessage = {
        type: "report",
        answered: fits.answered,
        failed,
        errorSamples: errors,
        rss: process.memoryUsage().rss,
      };
      process.send?.(report);
    }
  });
  process.once("disconnect", stop);
  const ready: ClientHostMessage = {
    type: "ready",
    admitted: sockets.length,
    failed,
    errorSamples: errors,
    rss: process.memoryUsage().rss,
  };
  process.send(ready);
}

/** One connection through connect, hello and admission; resolves once admitted. */
async function admit(url: string, fits: FitQueue): Promise<BareSocket> {
  const socket: BareSocket = io(url, {
    transports: ["websocket"],
    reconnection: false,
    forceNew: true,
    parser: lenientParser,
  });
  try {
    await new Promise<void>((resolve, reject) => {
      socket.once("connect", () => resolve());
      socket.once("connect_error", reject);
    });
    const reply = await socket
      .timeout(ACK_TIMEOUT_MS)
      .emitWithAck("hello", { protocolVersion: PROTOCOL_VERSION, label: "bench" });
    if (!reply.ok) throw new Error(`hello refused: ${reply.code}: ${reply.message}`);
  } catch (err) {
    socket.disconnect();
    throw err;
  }
  if (fits.enabled) socket.on("fit", (ins) => fits.push(socket, ins));
  return socket;
}

/** A fit to answer: only what the reply needs, so the weights it brought are not kept. */
interface PendingFit {
  socket: BareSocket;
  round: number;
  nonce: string;
  specs: FitInstructions["weights"]["specs"];
}

/** Answers fits with the fixed update, `spec.uploads` at a time, each waiting for its ack. */
class FitQueue {
  answered = 0;
  private readonly pending: PendingFit[] = [];
  private running = 0;
  /** One update's bytes per model size, shared by every client of this host. */
  private readonly updates = new Map<number, Uint8Array>();

  constructor(
    private readonly spec: ClientHostSpec,
    private readonly fail: (what: string) => void,
  ) {}

  get enabled(): boolean {
    return this.spec.fitValue !== null;
  }

  push(socket: BareSocket, ins: FitInstructions): void {
    this.pending.push({ socket, round: ins.round, nonce: ins.nonce, specs: ins.weights.specs });
    this.pump();
  }

  private pump(): void {
    while (this.running < this.spec.uploads && this.pending.length > 0) {
      const fit = this.pending.shift() as PendingFit;
      this.running++;
      this.answer(fit)
        .catch((err: unknown) =>
          this.fail(`round ${fit.round}: ${err instanceof Error ? err.message : String(err)}`),
        )
        .finally(() => {
          this.running--;
          this.pump();
        });
    }
  }

  private async answer(fit: PendingFit): Promise<void> {
    const size = totalSize(fit.specs);
    let data = this.updates.get(size);
    if (data === undefined) {
      data = float32ToBytes(new Float32Array(size).fill(this.spec.fitValue ?? 0));
      this.updates.set(size, data);
    }
    const ack = await fit.socket.timeout(ACK_TIMEOUT_MS).emitWithAck("fitResult", {
      round: fit.round,
      nonce: fit.nonce,
      update: {
        numExamples: this.spec.numExamples,
        delta: { specs: fit.specs, data },
        metrics: { loss: 1, accuracy: 0.1, steps: 1, epochsCompleted: 1, seconds: 0 },
      },
    });
    if (ack.ok) this.answered++;
    else this.fail(`round ${fit.round}: update refused: ${ack.code}: ${ack.message}`);
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`scale-out-worker: ${err instanceof Error ? err.stack : String(err)}\n`);
  process.exit(1);
});
