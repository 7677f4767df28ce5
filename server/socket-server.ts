import type { Server as HttpServer } from "node:http";
import { Server } from "socket.io";
import { describeError, ErrorCode, FedsimError } from "../common/errors.js";
import {
  type Ack,
  type ClientToServerEvents,
  fitErrorSchema,
  fitResultSchema,
  formatZodIssues,
  type Hello,
  helloSchema,
  type InterServerEvents,
  type ModelDescriptor,
  PROTOCOL_VERSION,
  proveSchema,
  type ServerToClientEvents,
  type SocketData,
  safeParseUntrusted,
  type Welcome,
} from "../common/protocol.js";
import type { AdmittedClient, AuthGate } from "./auth-gate.js";
import type { ClientDirectory, ClientProxy } from "./client-proxy.js";
import { type FedsimSocket, refuse, SocketClientProxy } from "./socket-proxy.js";

export interface SocketServerOptions {
  httpServer: HttpServer;
  model: ModelDescriptor;
  auth: AuthGate;
  /** Largest message a client may send; Socket.IO drops bigger ones by closing the transport. */
  maxPayloadBytes: number;
  /** A connection that has not said hello by then is closed. */
  helloTimeoutMs?: number;
  log: (line: string) => void;
}

/**
 * The Socket.IO edge of the coordinator: handshake (protocol version, authentication), the
 * registry of connected clients, and routing of client messages to their proxies. Implements
 * ClientDirectory for the round loop.
 */
export class CoordinatorSocketServer implements ClientDirectory {
  readonly io: Server<ClientToServerEvents, ServerToClientEvents, InterServerEvents, SocketData>;
  private readonly clients = new Map<string, SocketClientProxy>();
  private readonly waiters = new Set<() => void>();
  private readonly options: SocketServerOptions;
  /** Counts of refusals by code, for logs and tests. */
  readonly refusals = new Map<string, number>();

  constructor(options: SocketServerOptions) {
    this.options = options;
    this.io = new Server(options.httpServer, {
      maxHttpBufferSize: options.maxPayloadBytes,
      // Large models take a while to serialise on a busy 2-core machine; be patient with pings.
      pingTimeout: 60_000,
      pingInterval: 25_000,
      cors: { origin: false },
    });
    this.io.on("connection", (socket) => this.onConnection(socket));
  }

  connected(): ClientProxy[] {
    return [...this.clients.values()].filter((c) => c.connected);
  }

  /** Clients the registry remembers, connected or not (keyed ones are kept to recognise reconnects). */
  knownClients(): number {
    return this.clients.size;
  }

  count(): number {
    return this.connected().length;
  }

  waitForClients(count: number, timeoutMs: number): Promise<boolean> {
    if (this.count() >= count) return Promise.resolve(true);
    return new Promise((resolve) => {
      const check = () => {
        if (this.count() >= count) {
          clearTimeout(timer);
          this.waiters.delete(check);
          resolve(true);
        }
      };
      const timer = setTimeout(() => {
        this.waiters.delete(check);
        resolve(this.count() >= count);
      }, timeoutMs);
      this.waiters.add(check);
    });
  }

  async close(reason = "coordinator shutting down"): Promise<void> {
    this.io.emit("shutdown", { reason });
    for (const c of this.clients.values()) c.handleDisconnect(reason);
    await new Promise<void>((resolve) => this.io.close(() => resolve()));
  }

  private countRefusal(code: string): void {
    this.refusals.set(code, (this.refusals.get(code) ?? 0) + 1);
  }

  private onConnection(socket: FedsimSocket): void {
    const log = this.options.log;
    socket.data.authenticated = false;
    const helloTimer = setTimeout(() => {
      if (!socket.data.authenticated) {
        log(`handshake: ${socket.id} sent no hello in time; closing`);
        socket.disconnect(true);
      }
    }, this.options.helloTimeoutMs ?? 30_000);
    let pendingChallenge: { hello: Hello; challenge: Uint8Array } | null = null;

    const admit = ({ clientId, publicKey }: AdmittedClient): Welcome => {
      clearTimeout(helloTimer);
      socket.data.authenticated = true;
      socket.data.clientId = clientId;
      const existing = this.clients.get(clientId);
      if (existing) {
        log(`handshake: ${clientId} reconnected`);
        existing.replaceSocket(socket);
      } else {
        this.clients.set(clientId, new SocketClientProxy(clientId, socket, log, publicKey));
      }
      for (const w of [...this.waiters]) w();
      return {
        clientId,
        protocolVersion: PROTOCOL_VERSION,
        model: this.options.model,
        maxPayloadBytes: this.options.maxPayloadBytes,
      };
    };

    socket.on("hello", (raw, ack) => {
      const reply = safeAck(ack);
      // A second hello would register a second client on this one connection: a ghost that is
      // counted, sampled and then times out every round.
      if (socket.data.authenticated) {
        this.countRefusal(ErrorCode.DUPLICATE);
        return reply(
          refuse(ErrorCode.DUPLICATE, `this connection already said hello as ${socket.data.clientId}`),
        );
      }
      const parsed = safeParseUntrusted(helloSchema, raw);
      if (!parsed.success) {
        this.countRefusal(ErrorCode.BAD_PAYLOAD);
        return reply(
          refuse(ErrorCode.BAD_PAYLOAD, `malformed hello: ${formatZodIssues(parsed.error).join("; ")}`),
        );
      }
      const hello = parsed.data;
      if (hello.protocolVersion !== PROTOCOL_VERSION) {
        this.countRefusal(ErrorCode.PROTOCOL_VERSION);
        reply(
          refuse(
            ErrorCode.PROTOCOL_VERSION,
            `client speaks protocol ${hello.protocolVersion}, coordinator speaks ${PROTOCOL_VERSION}`,
          ),
        );
        setTimeout(() => socket.disconnect(true), 50);
        return;
      }
      try {
        const step = this.options.auth.begin(hello);
        if ("clientId" in step) return reply({ ok: true, ...admit(step) });
        pendingChallenge = { hello, challenge: step.challenge };
        return reply({
          ok: true,
          clientId: "",
          protocolVersion: PROTOCOL_VERSION,
          model: { topology: null, specs: [] },
          maxPayloadBytes: this.options.maxPayloadBytes,
          challenge: step.challenge,
        });
      } catch (err) {
        return this.refuseHandshake(socket, reply, err);
      }
    });

    socket.on("prove", (raw, ack) => {
      const reply = safeAck(ack);
      const parsed = safeParseUntrusted(proveSchema, raw);
      if (!parsed.success || !pendingChallenge) {
        this.countRefusal(ErrorCode.UNAUTHORIZED);
        return reply(refuse(ErrorCode.UNAUTHORIZED, "prove without a pending challenge, or malformed"));
      }
      const { hello, challenge } = pendingChallenge;
      pendingChallenge = null;
      try {
        const admitted = this.options.auth.finish(hello, challenge, parsed.data.signature);
        return reply({ ok: true, ...admit(admitted) });
      } catch (err) {
        return this.refuseHandshake(socket, reply, err);
      }
    });

    socket.on("fitResult", (raw, ack) => {
      const reply = safeAck(ack);
      const proxy = this.proxyFor(socket);
      if (!proxy) {
        this.countRefusal(ErrorCode.UNKNOWN_CLIENT);
        return reply(refuse(ErrorCode.UNKNOWN_CLIENT, "say hello (and authenticate) before sending results"));
      }
      const parsed = safeParseUntrusted(fitResultSchema, raw);
      if (!parsed.success) {
        this.countRefusal(ErrorCode.BAD_PAYLOAD);
        log(
          `fitResult from ${proxy.id} refused: malformed: ${formatZodIssues(parsed.error).slice(0, 3).join("; ")}`,
        );
        return reply(
          refuse(ErrorCode.BAD_PAYLOAD, `malformed fitResult: ${formatZodIssues(parsed.error).join("; ")}`),
        );
      }
      let result: Ack;
      try {
        result = proxy.handleResult(parsed.data);
      } catch (err) {
        result = refuse(ErrorCode.INTERNAL, describeError(err));
      }
      if (!result.ok) this.countRefusal(result.code);
      reply(result);
    });

    socket.on("fitError", (raw) => {
      const proxy = this.proxyFor(socket);
      const parsed = safeParseUntrusted(fitErrorSchema, raw);
      if (proxy && parsed.success) proxy.handleError(parsed.data);
    });

    socket.on("disconnect", (reason) => {
      clearTimeout(helloTimer);
      const proxy = this.proxyFor(socket);
      if (proxy) {
        log(`registry: ${proxy.id} disconnected (${reason})`);
        proxy.handleDisconnect(reason);
        // A key-less client can never come back under the same id: forget it, so that churn of
        // anonymous connections cannot grow the registry without bound.
        if (proxy.publicKey === undefined) this.clients.delete(proxy.id);
      }
    });
  }

  private proxyFor(socket: FedsimSocket): SocketClientProxy | null {
    if (!socket.data.authenticated || !socket.data.clientId) return null;
    const proxy = this.clients.get(socket.data.clientId);
    // A stale socket of a client that has since reconnected is no longer that client.
    if (!proxy?.isSocket(socket)) return null;
    return proxy ?? null;
  }

  private refuseHandshake(socket: FedsimSocket, reply: (a: Ack<Welcome>) => void, err: unknown): void {
    const code = err instanceof FedsimError ? err.code : ErrorCode.UNAUTHORIZED;
    this.countRefusal(code);
    this.options.log(`handshake: refused ${socket.id}: ${describeError(err)}`);
    reply(refuse(code, err instanceof Error ? err.message : String(err)));
    setTimeout(() => socket.disconnect(true), 50);
  }
}

/** Acks are optional for a hostile client; never throw because one is missing. */
function safeAck<T>(ack: unknown): (value: T) => void {
  return typeof ack === "function" ? (value: T) => (ack as (v: T) => void)(value) : () => {};
}
