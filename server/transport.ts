import { createServer as createHttpServer, type Server as HttpServer } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import { loadTlsOptions } from "../common/crypto/tls.js";

/**
 * The HTTP server a coordinator or an edge listens on: HTTPS (so WSS) when given a certificate
 * and key, read and checked before anything listens, else plain HTTP.
 */
export async function createServerTransport(tls?: {
  certPath: string;
  keyPath: string;
}): Promise<HttpServer> {
  if (!tls) return createHttpServer();
  const loaded = await loadTlsOptions({ certPath: tls.certPath, keyPath: tls.keyPath });
  // Socket.IO and listen() use only what https.Server shares with http.Server.
  return createHttpsServer({ cert: loaded.cert, key: loaded.key }) as unknown as HttpServer;
}
