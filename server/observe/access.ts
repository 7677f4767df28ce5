import { createHash, timingSafeEqual } from "node:crypto";
import { BlockList, isIP } from "node:net";
import { MIN_TOKEN_CHARS } from "../../common/crypto/auth.js";
import { ErrorCode, FedsimError } from "../../common/errors.js";

/**
 * Who may read the coordinator's observation surfaces (the dashboard page, its Socket.IO
 * namespace, /metrics). Without a token only loopback peers may; with one, every peer must
 * present it, loopback included, so that a reverse proxy on the same host cannot open the door.
 */
export interface AccessRule {
  token?: string;
}

/** What a request or a handshake presents: the peer's address and the token it carries, if any. */
export interface AccessAttempt {
  remoteAddress: string | undefined;
  token: string | undefined;
}

export interface AccessRefusal {
  /** 401 when a token would open the door, 403 when nothing can (non-loopback, no token set). */
  status: 401 | 403;
  code: typeof ErrorCode.UNAUTHORIZED;
  message: string;
}

/** Longest token accepted; the cap keeps the hash of an attacker's header cheap. */
export const MAX_DASHBOARD_TOKEN_CHARS = 512;

const loopback = new BlockList();
loopback.addSubnet("127.0.0.0", 8, "ipv4");
loopback.addAddress("::1", "ipv6");
loopback.addSubnet("::ffff:127.0.0.0", 104, "ipv6");

/** True for a peer address in 127.0.0.0/8, ::1 or IPv4-mapped 127.x; false for anything else. */
export function isLoopbackAddress(address: string | undefined): boolean {
  if (address === undefined) return false;
  const family = isIP(address);
  if (family === 0) return false;
  return loopback.check(address, family === 6 ? "ipv6" : "ipv4");
}

/** Refuses a token nobody should rely on, when the coordinator starts rather than at first use. */
export function checkAccessRule(rule: AccessRule): void {
  if (rule.token === undefined) return;
  const length = rule.token.length;
  if (length < MIN_TOKEN_CHARS || length > MAX_DASHBOARD_TOKEN_CHARS) {
    throw new FedsimError(
      ErrorCode.INVALID_CONFIG,
      `dashboardToken must be ${MIN_TOKEN_CHARS} to ${MAX_DASHBOARD_TOKEN_CHARS} characters (got ${length})`,
      ["use a random one, e.g. openssl rand -hex 16"],
    );
  }
}

/** null when the attempt may read; otherwise why not, as a typed refusal. */
export function checkAccess(rule: AccessRule, attempt: AccessAttempt): AccessRefusal | null {
  if (rule.token !== undefined) {
    if (attempt.token !== undefined && sameSecret(attempt.token, rule.token)) return null;
    return {
      status: 401,
      code: ErrorCode.UNAUTHORIZED,
      message: attempt.token === undefined ? "a dashboard token is required" : "the dashboard token is wrong",
    };
  }
  if (isLoopbackAddress(attempt.remoteAddress)) return null;
  return {
    status: 403,
    code: ErrorCode.UNAUTHORIZED,
    message:
      "the dashboard and /metrics answer loopback peers only; start the coordinator with a dashboard token to open them to other hosts",
  };
}

/** Compares digests, so neither the comparison's time nor a length mismatch says anything. */
function sameSecret(presented: string, expected: string): boolean {
  if (presented.length > MAX_DASHBOARD_TOKEN_CHARS) return false;
  const a = createHash("sha256").update(presented).digest();
  const b = createHash("sha256").update(expected).digest();
  return timingSafeEqual(a, b);
}

/** The cookie the dashboard page sets, so that its assets and socket carry the token. */
export const ACCESS_COOKIE = "fedsim_dashboard_token";

/** The token a request carries: `Authorization: Bearer`, `?token=`, or the dashboard's cookie. */
export function presentedToken(
  headers: { authorization?: string | undefined; cookie?: string | undefined },
  query?: URLSearchParams,
): string | undefined {
  const bearer = /^Bearer\s+(\S+)\s*$/i.exec(headers.authorization ?? "")?.[1];
  return bearer ?? query?.get("token") ?? cookieValue(headers.cookie, ACCESS_COOKIE);
}

function cookieValue(header: string | undefined, name: string): string | undefined {
  for (const part of (header ?? "").split(";")) {
    const eq = part.indexOf("=");
    if (eq > 0 && part.slice(0, eq).trim() === name) {
      try {
        return decodeURIComponent(part.slice(eq + 1).trim());
      } catch {
        return undefined;
      }
    }
  }
  return undefined;
}
