import { once } from "node:events";
import { connect, createServer, type Server, type Socket } from "node:net";

/**
 * A layer-4 load balancer in front of the edges, as docs/SCALE-OUT.md suggests for deployments:
 * each new TCP connection goes to the next upstream port in turn, and to the one after when that
 * one refuses (an edge that was killed). No HTTP, no stickiness: websocket clients need none.
 */
export class TcpBalancer {
  private next = 0;
  private readonly sockets = new Set<Socket>();

  private constructor(
    private readonly server: Server,
    readonly port: number,
    private readonly upstreams: number[],
  ) {}

  static async start(upstreams: number[]): Promise<TcpBalancer> {
    const server = createServer();
    server.listen(0, "127.0.0.1");
    await once(server, "listening");
    const address = server.address();
    const balancer = new TcpBalancer(
      server,
      typeof address === "object" && address ? address.port : 0,
      upstreams,
    );
    server.on("connection", (client) => balancer.route(client));
    return balancer;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise((resolve) => this.server.close(resolve));
  }

  private route(client: Socket, attempt = 0): void {
    this.sockets.add(client);
    client.once("close", () => this.sockets.delete(client));
    if (attempt >= this.upstreams.length) {
      client.destroy();
      return;
    }
    const port = this.upstreams[this.next % this.upstreams.length];
    this.next++;
    const upstream = connect(port, "127.0.0.1");
    this.sockets.add(upstream);
    let connected = false;
    upstream.once("connect", () => {
      connected = true;
      client.pipe(upstream);
      upstream.pipe(client);
    });
    upstream.on("error", () => {
      if (!connected) this.route(client, attempt + 1);
      else client.destroy();
    });
    upstream.once("close", () => {
      this.sockets.delete(upstream);
      if (connected) client.destroy();
    });
    client.on("error", () => upstream.destroy());
    client.once("close", () => upstream.destroy());
  }
}
