import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { Server } from "socket.io";
import { io as connect } from "socket.io-client";
import { median, medianSeconds, sig, timeOnce } from "../timing.js";
import { CNN_PARAMS } from "./aggregation.js";

/**
 * Context, not a ratio: raw Socket.IO loopback throughput for one FedAvg-CNN-sized binary payload
 * (6.65 MB) in each direction, over a websocket, with acknowledgements marking completion.
 */
export interface TransferSection {
  payloadBytes: number;
  /** Client → server (upload of an update), MB/s. */
  uploadMBps: number;
  /** Server → client (download of the global model), MB/s. */
  downloadMBps: number;
  uploadSeconds: number;
  downloadSeconds: number;
  repeats: number;
  transport: "websocket";
}

export async function runTransfer(options: {
  quick: boolean;
  log: (line: string) => void;
}): Promise<TransferSection> {
  const payloadBytes = CNN_PARAMS * 4;
  const payload = Buffer.alloc(payloadBytes, 7);
  const repeats = options.quick ? 3 : 10;
  const httpServer = createServer();
  // The default 1 MB limit would drop the connection with a bare "transport close".
  const server = new Server(httpServer, { maxHttpBufferSize: payloadBytes * 2 });
  server.on("connection", (socket) => {
    socket.on("upload", (data: Buffer, ack: (size: number) => void) => ack(data.length));
    socket.on("download", (ack: (data: Buffer) => void) => ack(payload));
  });
  await new Promise<void>((resolve) => httpServer.listen(0, "127.0.0.1", resolve));
  const port = (httpServer.address() as AddressInfo).port;
  const client = connect(`http://127.0.0.1:${port}`, { transports: ["websocket"], reconnection: false });
  try {
    await new Promise<void>((resolve, reject) => {
      client.once("connect", resolve);
      client.once("connect_error", reject);
    });
    options.log("transfer: websocket loopback…");
    const upload = () =>
      new Promise<void>((resolve, reject) =>
        client.emit("upload", payload, (size: number) =>
          size === payloadBytes ? resolve() : reject(new Error(`server received ${size} bytes`)),
        ),
      );
    const download = () =>
      new Promise<void>((resolve, reject) =>
        client.emit("download", (data: Buffer) =>
          data.length === payloadBytes
            ? resolve()
            : reject(new Error(`client received ${data.length} bytes`)),
        ),
      );
    const uploadSeconds = await medianSeconds(upload, { repeats, warmups: 2 });
    const downloadSeconds = await medianSeconds(download, { repeats, warmups: 2 });
    return {
      payloadBytes,
      uploadMBps: sig(payloadBytes / uploadSeconds / 1e6) ?? 0,
      downloadMBps: sig(payloadBytes / downloadSeconds / 1e6) ?? 0,
      uploadSeconds: sig(uploadSeconds) ?? 0,
      downloadSeconds: sig(downloadSeconds) ?? 0,
      repeats,
      transport: "websocket",
    };
  } finally {
    client.close();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}

/**
 * The bytes of one FedAvg round over plain Socket.IO on loopback, nothing else: the server sends a
 * `modelBytes` payload to each of `clients` websocket clients at once, each client answers with an
 * `updateBytes` payload as soon as its download has arrived, and the round ends when the server has
 * every upload. The server and the clients share this process, as the round-overhead section's do.
 * Returns the median seconds over `repeats` after `warmups` untimed rounds.
 */
export async function measureRawRound(options: {
  clients: number;
  modelBytes: number;
  updateBytes: number;
  repeats: number;
  warmups?: number;
}): Promise<{ seconds: number; samples: number[] }> {
  const { clients, modelBytes, updateBytes } = options;
  const model = Buffer.alloc(modelBytes, 3);
  const update = Buffer.alloc(updateBytes, 5);
  const httpServer = createServer();
  const server = new Server(httpServer, { maxHttpBufferSize: Math.max(modelBytes, updateBytes) * 2 });
  let onUpload: (size: number) => void = () => undefined;
  server.on("connection", (socket) => {
    socket.on("update", (data: Buffer) => onUpload(data.length));
  });
  await new Promise<void>((resolve) => httpServer.listen(0, "127.0.0.1", resolve));
  const port = (httpServer.address() as AddressInfo).port;
  const sockets = Array.from({ length: clients }, () =>
    connect(`http://127.0.0.1:${port}`, { transports: ["websocket"], reconnection: false }),
  );
  try {
    await Promise.all(
      sockets.map(
        (socket) =>
          new Promise<void>((resolve, reject) => {
            socket.once("connect", resolve);
            socket.once("connect_error", reject);
          }),
      ),
    );
    for (const socket of sockets) {
      socket.on("model", (data: Buffer) => {
        if (data.length === modelBytes) socket.emit("update", update);
      });
    }
    const round = () =>
      new Promise<void>((resolve, reject) => {
        let received = 0;
        onUpload = (size) => {
          if (size !== updateBytes)
            reject(new Error(`server received ${size} bytes, expected ${updateBytes}`));
          else if (++received === clients) resolve();
        };
        // One emit per client, as a coordinator must (each fit request is the client's own message).
        for (const socket of server.sockets.sockets.values()) socket.emit("model", model);
      });
    for (let i = 0; i < (options.warmups ?? 2); i++) await round();
    const samples: number[] = [];
    for (let i = 0; i < options.repeats; i++) samples.push(await timeOnce(round));
    return { seconds: median(samples), samples };
  } finally {
    for (const socket of sockets) socket.close();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}
