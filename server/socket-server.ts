import type { Server as HttpServer } from "node:http";
import { Server } from "socket.io";
import { describeError, ErrorCode, FedsimError } from "../common/errors.js";
import { lenientParser } from "../common/net/lenient-parser.js";
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
import { assertExamplesInRange, type ClientLimits, resolveClientLimits } from "./client-limits.js";
import type { ClientDirectory, ClientProxy } from "./client-proxy.js";
import { type DrainingConnection, whenDrained } from "./drain.js";
import { resultHeader } from "./observe/upload-signal.js";
import { PoolSession, servePoolEvents } from "./pool-session.js";
import { type FedsimSocket, refuse, SocketClientProxy } from "./socket-proxy.js";

/** How long closing waits for the shutdown notice to reach each connection's transport. */
const SHUTDOWN_FLUSH_MS = 2000;

export interface SocketServerOptions {
  httpServer: HttpServer;
  model: ModelDescriptor;
  auth: AuthGate;
  /** Largest message a client may send; Socket.IO drops bigger ones by closing the transport. */
  maxPayloadBytes: number;
  /** A connection that has not said hello by then is closed. */
  helloTimeoutMs?: number;
  /**
   * How many keyed clients to remember while they are disconnected, so that they are recognised
   * when they come back (default 10,000). Past it, the least recently seen is forgotten first: a
   * flood of fresh keys cannot grow the registry without bound. 0 forgets them all at once.
   */
  maxRememberedClients?: number;
  /** Bounds on each client's example count and update norm (defaults in client-limits.ts). */
  limits?: Partial<ClientLimits>;
  /** Virtual clients one pool session may host (default 100,000). */
  maxVirtualClientsPerSession?: number;
  /** Called when a client's fit result begins to arrive (its attachments still on the way); pools' too. */
  onUploadStart?: (clientId: string) => void;
  /** Called when a client is admitted or goes away (an edge tells the coordinator its roster changed). */
  onClientsChanged?: () => void;
  log: (line: string) => void;
}

/** Virtual clients one pool session may host, unless told otherwise (the scenario schema's limit). */
export const MAX_VIRTUAL_CLIENTS_PER_SESSION = 100_000;

/** How many keyed clients the registry remembers while they are away, unless told otherwise. */
export const DEFAULT_MAX_REMEMBERED_CLIENTS = 10_000;

/**
 * The Socket.IO edge of the coordinator: handshake (protocol version, authentication), the
 * registry of connected clients, and routing of client messages to their proxies. Implements
 * ClientDirectory for the round loop.
 */
export class CoordinatorSocketServer implements ClientDirectory {
  readonly io: Server<ClientToServerEvents, ServerToClientEvents, InterServerEvents, SocketData>;
  /** Every client the registry remembers: the connected ones and the keyed ones that went away. */
  private readonly clients = new Map<string, SocketClientProxy>();
  /** Ids of clients whose current socket is connected, so counting costs O(1) at 10k clients. */
  private readonly live = new Set<string>();
  /** Keyed clients that went away, least recently seen first. */
  private readonly away = new Set<string>();
  /** Open pool sessions; their virtual clients are clients like any other (docs/PROTOCOL.md §12). */
  private readonly sessions = new Map<FedsimSocket, PoolSession>();
  private readonly maxRemembered: number;
  /** Bounds on each client's update; the coordinator applies them to sealed updates its edges relay too. */
  readonly limits: ClientLimits;
  private readonly waiters = new Set<() => void>();
  private readonly options: SocketServerOptions;
  /** Counts of refusals by code, for logs and tests. */
  readonly refusals = new Map<string, number>();

  constructor(options: SocketServerOptions) {
    this.options = options;
    this.maxRemembered = options.maxRememberedClients ?? DEFAULT_MAX_REMEMBERED_CLIENTS;
    if (!Number.isInteger(this.maxRemembered) || this.maxRemembered < 0) {
      throw new FedsimError(
        ErrorCode.INVALID_CONFIG,
        `maxRememberedClients must be an integer ≥ 0, got ${options.maxRememberedClients}`,
      );
    }
    this.limits = resolveClientLimits(options.limits);
    this.io = new Server(options.httpServer, {
      maxHttpBufferSize: options.maxPayloadBytes,
      // A bare NaN in a client's JSON (Python's json writes one) is refused by the schemas, not
      // answered by closing the connection.
      parser: lenientParser,
      // Large models take a while to serialise on a busy 2-core machine; be patient with pings.
      pingTimeout: 60_000,
      pingInterval: 25_000,
      cors: { origin: false },
    });
    this.io.on("connection", (socket) => this.onConnection(socket));
  }

  connected(): ClientProxy[] {
    const out: ClientProxy[] = [];
    for (const id of this.live) {
      const proxy = this.clients.get(id);
      if (proxy?.connected) out.push(proxy);
    }
    for (const session of this.sessions.values()) {
      for (const proxy of session.clients.values()) if (proxy.online) out.push(proxy);
    }
    return out;
  }

  /** One connected client by id, without listing them all (an edge starts fits one at a time). */
  connectedClient(id: string): ClientProxy | undefined {
    const proxy = this.live.has(id) ? this.clients.get(id) : undefined;
    if (proxy?.connected) return proxy;
    for (const session of this.sessions.values()) {
      for (const virtual of session.clients.values()) if (virtual.id === id && virtual.online) return virtual;
    }
    return undefined;
  }

  /**
   * Clients the registry remembers, connected or not (keyed ones are kept to recognise
   * reconnects), and the virtual clients of open pool sessions.
   */
  knownClients(): number {
    let virtual = 0;
    for (const session of this.sessions.values()) virtual += session.clients.size;
    return this.clients.size + virtual;
  }

  /** Ids of the clients the registry remembers: connected first, then the away ones, oldest first; then virtual ones. */
  knownClientIds(): string[] {
    const virtual: string[] = [];
    for (const session of this.sessions.values())
      for (const p of session.clients.values()) virtual.push(p.id);
    return [...this.live, ...this.away, ...virtual];
  }

  count(): number {
    let virtual = 0;
    for (const session of this.sessions.values()) virtual += session.onlineCount;
    return this.live.size + virtual;
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

  /**
   * Closes every connection. `shutdown` tells clients the run is over, so they stop instead of
   * reconnecting; over edges the coordinator's notice reaches every edge's clients through the
   * adapter. An edge closes without it: its clients should reconnect to another edge.
   */
  async close(reason = "coordinator shutting down", options: { shutdown?: boolean } = {}): Promise<void> {
    if (options.shutdown ?? true) {
      this.io.emit("shutdown", { reason });
      // engine.io's types mark the write buffer private; it is a plain field at run time.
      await whenDrained(
        [...this.io.of("/").sockets.values()].map((s) => s.conn as unknown as DrainingConnection),
        SHUTDOWN_FLUSH_MS,
      );
    }
    for (const c of this.clients.values()) c.handleDisconnect(reason);
    for (const session of this.sessions.values()) session.close(reason);
    this.sessions.clear();
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
    const onUploadStart = this.options.onUploadStart;
    if (onUploadStart) {
      socket.conn.on("packet", (packet) => {
        if (!socket.data.authenticated || !socket.data.clientId) return;
        const header = resultHeader(packet);
        if (header?.event === "fitResult") onUploadStart(socket.data.clientId);
        else if (header) {
          const id = this.sessions.get(socket)?.clients.get(header.index)?.id;
          if (id !== undefined) onUploadStart(id);
        }
      });
    }

    const admit = ({ clientId, publicKey }: AdmittedClient, hello: Hello): Welcome => {
      // After authentication, so that only admitted clients learn the cap from the refusal.
      if (hello.numExamples !== undefined) assertExamplesInRange(hello.numExamples, undefined, this.limits);
      clearTimeout(helloTimer);
      socket.data.authenticated = true;
      socket.data.clientId = clientId;
      const existing = this.clients.get(clientId);
      this.away.delete(clientId);
      // Never count a socket that is already gone: its disconnect has fired and will not again.
      if (socket.connected) this.live.add(clientId);
      if (existing) {
        log(`handshake: ${clientId} reconnected`);
        existing.replaceSocket(socket, hello.numExamples);
      } else {
        this.clients.set(
          clientId,
          new SocketClientProxy(clientId, socket, log, this.limits, hello.numExamples, publicKey),
        );
      }
      this.clientsChanged();
      return {
        clientId,
        protocolVersion: PROTOCOL_VERSION,
        model: this.options.model,
        maxPayloadBytes: this.options.maxPayloadBytes,
      };
    };

    /** A pool session: the socket speaks for virtual clients and is no client itself. */
    const admitPool = ({ clientId, publicKey }: AdmittedClient): Welcome => {
      if (!publicKey) throw new FedsimError(ErrorCode.UNAUTHORIZED, "a pool session must prove a key");
      clearTimeout(helloTimer);
      socket.data.authenticated = true;
      socket.data.pool = true;
      socket.data.clientId = clientId;
      if (socket.connected) {
        const session = new PoolSession({
          publicKey,
          socket,
          maxClients: this.options.maxVirtualClientsPerSession ?? MAX_VIRTUAL_CLIENTS_PER_SESSION,
          limits: this.limits,
          isHostedElsewhere: (index) => this.hostedElsewhere(clientId, socket, index),
          onJoin: () => this.clientsChanged(),
          log,
        });
        this.sessions.set(socket, session);
        log(`handshake: pool session ${clientId} opened`);
      }
      return {
        clientId,
        protocolVersion: PROTOCOL_VERSION,
        model: this.options.model,
        maxPayloadBytes: this.options.maxPayloadBytes,
      };
    };
    servePoolEvents(
      socket,
      () => this.sessions.get(socket) ?? null,
      (code) => this.countRefusal(code),
    );

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
      if (hello.pool === true && hello.publicKey === undefined) {
        this.countRefusal(ErrorCode.UNAUTHORIZED);
        return reply(refuse(ErrorCode.UNAUTHORIZED, "a pool session must prove a key (hello.publicKey)"));
      }
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
        if ("clientId" in step) return reply({ ok: true, ...admit(step, hello) });
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
        return reply({ ok: true, ...(hello.pool === true ? admitPool(admitted) : admit(admitted, hello)) });
      } catch (err) {
        return this.refuseHandshake(socket, reply, err);
      }
    });

    socket.on("fitResult", async (raw, ack) => {
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
        result = await proxy.handleResult(parsed.data);
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

    // A packet Socket.IO's parser rejects (e.g. more than 10 binary attachments) closes the
    // connection before any handler could answer it: say why, or the client just "disconnected".
    // A client can also emit an event named "error"; its payload is never an Error instance.
    socket.on("error", (err: unknown) => {
      if (err instanceof Error) log(`connection ${socket.data.clientId ?? socket.id} closed: ${err.message}`);
    });

    socket.on("disconnect", (reason) => {
      clearTimeout(helloTimer);
      const session = this.sessions.get(socket);
      if (session) {
        log(
          `registry: pool session ${socket.data.clientId} closed with ${session.clients.size} virtual clients (${reason})`,
        );
        session.close(reason);
        this.sessions.delete(socket);
      }
      const proxy = this.proxyFor(socket);
      if (proxy) {
        log(`registry: ${proxy.id} disconnected (${reason})`);
        proxy.handleDisconnect(reason);
        this.live.delete(proxy.id);
        // A key-less client can never come back under the same id: forget it, so that churn of
        // anonymous connections cannot grow the registry without bound.
        if (proxy.publicKey === undefined) this.clients.delete(proxy.id);
        else this.rememberAway(proxy.id);
      }
      if (session || proxy) this.options.onClientsChanged?.();
    });
  }

  private clientsChanged(): void {
    for (const w of [...this.waiters]) w();
    this.options.onClientsChanged?.();
  }

  /** Keeps a keyed client that went away, forgetting the least recently seen beyond the cap. */
  private rememberAway(clientId: string): void {
    this.away.delete(clientId);
    this.away.add(clientId);
    while (this.away.size > this.maxRemembered) {
      const oldest = this.away.values().next().value as string;
      this.away.delete(oldest);
      this.clients.delete(oldest);
      this.options.log(`registry: forgot ${oldest} (more than ${this.maxRemembered} clients away)`);
    }
  }

  /** Whether another open session of the same pool key hosts this index (its id would be the same). */
  private hostedElsewhere(principal: string, socket: FedsimSocket, index: number): boolean {
    for (const [other, session] of this.sessions) {
      if (other !== socket && other.data.clientId === principal && session.clients.has(index)) return true;
    }
    return false;
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
