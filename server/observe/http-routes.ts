import { readFile } from "node:fs/promises";
import type { IncomingMessage, ServerResponse } from "node:http";
import { createRequire } from "node:module";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { describeError } from "../../common/errors.js";
import { ACCESS_COOKIE, type AccessRule, checkAccess, presentedToken } from "./access.js";
import type { CoordinatorMetrics } from "./metrics.js";

export const DASHBOARD_PATH = "/dashboard/";
export const METRICS_PATH = "/metrics";

interface Asset {
  file: () => string;
  type: string;
}

const here = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(import.meta.url);
/** The page's own files, next to this module (the build copies them into dist). */
const own = (name: string) => () => path.join(here, "dashboard", name);

/** Everything the page loads, from the package: runs are often offline, so no CDN. */
const ASSETS: Record<string, Asset> = {
  "": { file: own("index.html"), type: "text/html; charset=utf-8" },
  "app.js": { file: own("app.js"), type: "text/javascript; charset=utf-8" },
  "style.css": { file: own("style.css"), type: "text/css; charset=utf-8" },
  "vendor/echarts.min.js": {
    file: () => require.resolve("echarts/dist/echarts.min"),
    type: "text/javascript; charset=utf-8",
  },
  // socket.io ships its browser client; its exports map names no file, so go via package.json.
  "vendor/socket.io.esm.min.js": {
    file: () =>
      path.join(
        path.dirname(require.resolve("socket.io/package.json")),
        "client-dist",
        "socket.io.esm.min.js",
      ),
    type: "text/javascript; charset=utf-8",
  },
};

/** The page runs only its own scripts and talks only to the server it came from. */
const PAGE_HEADERS = {
  "Content-Security-Policy":
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self' ws: wss:; base-uri 'none'; frame-ancestors 'none'",
  "X-Content-Type-Options": "nosniff",
  "Referrer-Policy": "no-referrer",
  "Cache-Control": "no-store",
};

export interface HttpRoutesOptions {
  access: AccessRule;
  metrics: CoordinatorMetrics;
  /** Serve the dashboard page; /dashboard/ is a 404 otherwise. */
  dashboard: boolean;
  log: (line: string) => void;
}

/**
 * The coordinator's plain HTTP routes: /metrics (Prometheus) and /dashboard/ (the page and its
 * assets). Socket.IO answers its own path before these run. Every route applies the access rule.
 */
export function createHttpRoutes(
  options: HttpRoutesOptions,
): (req: IncomingMessage, res: ServerResponse) => void {
  const cache = new Map<string, Promise<Buffer>>();
  const load = (name: string, asset: Asset) => {
    let body = cache.get(name);
    if (!body) {
      body = readFile(asset.file());
      cache.set(name, body);
      body.catch(() => cache.delete(name));
    }
    return body;
  };

  return (req, res) => {
    const url = new URL(req.url ?? "/", "http://coordinator");
    const isMetrics = url.pathname === METRICS_PATH;
    const isDashboard =
      options.dashboard && (url.pathname === "/dashboard" || url.pathname.startsWith(DASHBOARD_PATH));
    if (!isMetrics && !isDashboard) return send(res, 404, "text/plain; charset=utf-8", "not found\n");
    if (req.method !== "GET" && req.method !== "HEAD") {
      res.setHeader("Allow", "GET, HEAD");
      return send(res, 405, "text/plain; charset=utf-8", "method not allowed\n");
    }
    const token = presentedToken(req.headers, url.searchParams);
    const refusal = checkAccess(options.access, { remoteAddress: req.socket.remoteAddress, token });
    if (refusal) {
      return send(
        res,
        refusal.status,
        "application/json",
        `${JSON.stringify({ ok: false, code: refusal.code, message: refusal.message })}\n`,
      );
    }
    if (isMetrics) {
      options.metrics.text().then(
        (text) => send(res, 200, options.metrics.contentType, text, req.method === "HEAD"),
        (err) => send(res, 500, "text/plain; charset=utf-8", `${describeError(err)}\n`),
      );
      return;
    }
    if (url.pathname === "/dashboard") {
      res.writeHead(308, { Location: `${DASHBOARD_PATH}${url.search}` });
      return res.end();
    }
    const name = url.pathname.slice(DASHBOARD_PATH.length);
    const asset = Object.hasOwn(ASSETS, name) ? ASSETS[name] : undefined;
    if (!asset) return send(res, 404, "text/plain; charset=utf-8", "not found\n");
    // A token that opened the page rides along as a cookie for its assets and its socket.
    if (name === "" && options.access.token !== undefined && url.searchParams.has("token")) {
      res.setHeader(
        "Set-Cookie",
        `${ACCESS_COOKIE}=${encodeURIComponent(options.access.token)}; HttpOnly; SameSite=Strict; Path=/`,
      );
    }
    load(name, asset).then(
      (body) => {
        for (const [k, v] of Object.entries(PAGE_HEADERS)) res.setHeader(k, v);
        send(res, 200, asset.type, body, req.method === "HEAD");
      },
      (err) => {
        options.log(`dashboard: cannot read ${name || "index.html"}: ${describeError(err)}`);
        send(res, 500, "text/plain; charset=utf-8", "dashboard asset missing from the package\n");
      },
    );
  };
}

function send(
  res: ServerResponse,
  status: number,
  type: string,
  body: string | Buffer,
  headOnly = false,
): void {
  res.writeHead(status, { "Content-Type": type, "Content-Length": Buffer.byteLength(body) });
  res.end(headOnly ? undefined : body);
}
