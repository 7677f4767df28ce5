import { describe, expect, it } from "vitest";
import { ErrorCode } from "../common/errors.js";
import {
  ACCESS_COOKIE,
  checkAccess,
  checkAccessRule,
  isLoopbackAddress,
  presentedToken,
} from "../server/observe/access.js";
import { expectError } from "./helpers/expect-error.js";

const TOKEN = "0123456789abcdef0123";

describe("who may read the dashboard and /metrics", () => {
  it("knows loopback peers in every spelling, and nothing else", () => {
    for (const a of ["127.0.0.1", "127.8.9.10", "::1", "::ffff:127.0.0.1", "0:0:0:0:0:0:0:1"]) {
      expect(isLoopbackAddress(a), a).toBe(true);
    }
    for (const a of [
      "10.0.0.5",
      "192.168.1.2",
      "::ffff:192.168.1.2",
      "fe80::1",
      "0.0.0.0",
      "::",
      "localhost",
      "",
      undefined,
    ]) {
      expect(isLoopbackAddress(a), String(a)).toBe(false);
    }
  });

  it("without a token: loopback peers may read, any other address is refused with UNAUTHORIZED (403)", () => {
    expect(checkAccess({}, { remoteAddress: "127.0.0.1", token: undefined })).toBeNull();
    expect(checkAccess({}, { remoteAddress: "::ffff:127.0.0.1", token: undefined })).toBeNull();
    for (const remoteAddress of ["10.1.2.3", "::ffff:172.17.0.2", "2001:db8::7", undefined]) {
      const refusal = checkAccess({}, { remoteAddress, token: "anything-at-all-here" });
      expect(refusal).toMatchObject({ status: 403, code: ErrorCode.UNAUTHORIZED });
      expect(refusal?.message).toMatch(/loopback/);
    }
  });

  it("with a token: every peer must present it, loopback included (401 otherwise)", () => {
    const rule = { token: TOKEN };
    expect(checkAccess(rule, { remoteAddress: "10.1.2.3", token: TOKEN })).toBeNull();
    expect(checkAccess(rule, { remoteAddress: "127.0.0.1", token: undefined })).toMatchObject({
      status: 401,
      code: ErrorCode.UNAUTHORIZED,
      message: "a dashboard token is required",
    });
    for (const token of [`${TOKEN}x`, TOKEN.slice(1), "", TOKEN.toUpperCase(), "x".repeat(10_000)]) {
      expect(checkAccess(rule, { remoteAddress: "127.0.0.1", token })).toMatchObject({
        status: 401,
        message: "the dashboard token is wrong",
      });
    }
  });

  it("refuses a short dashboard token when the coordinator starts (INVALID_CONFIG)", () => {
    expectError(() => checkAccessRule({ token: "short" }), ErrorCode.INVALID_CONFIG, "dashboardToken");
    expect(() => checkAccessRule({ token: TOKEN })).not.toThrow();
    expect(() => checkAccessRule({})).not.toThrow();
  });

  it("reads the token from a Bearer header, then ?token=, then the page's cookie", () => {
    const query = new URLSearchParams({ token: "from-query" });
    const cookie = `other=1; ${ACCESS_COOKIE}=${encodeURIComponent("from cookie")}; x=y`;
    expect(presentedToken({ authorization: "Bearer from-header", cookie }, query)).toBe("from-header");
    expect(presentedToken({ authorization: "Basic abc", cookie }, query)).toBe("from-query");
    expect(presentedToken({ cookie })).toBe("from cookie");
    expect(presentedToken({ cookie: `${ACCESS_COOKIE}=%E0%A4%A` })).toBeUndefined();
    expect(presentedToken({})).toBeUndefined();
  });
});
