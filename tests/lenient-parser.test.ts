import { Encoder, type Packet, PacketType } from "socket.io-parser";
import { describe, expect, it } from "vitest";
import { LenientDecoder, nonFiniteTokensAsStrings } from "../common/net/lenient-parser.js";

function decodeAll(chunks: unknown[]): Packet[] {
  const decoder = new LenientDecoder();
  const packets: Packet[] = [];
  decoder.on("decoded", (p: Packet) => packets.push(p));
  for (const chunk of chunks) decoder.add(chunk);
  return packets;
}

describe("lenient Socket.IO parser", () => {
  it("rewrites NaN, Infinity and -Infinity outside strings only", () => {
    expect(nonFiniteTokensAsStrings('[1,"x"]')).toBeNull();
    expect(nonFiniteTokensAsStrings('["NaN","a \\" NaN",-1]')).toBeNull();
    const rewritten = nonFiniteTokensAsStrings('{"a":NaN,"b":[Infinity,-Infinity],"c":"NaN"}');
    expect(JSON.parse(rewritten ?? "")).toEqual({
      a: "\u0000NaN",
      b: ["\u0000Infinity", "\u0000-Infinity"],
      c: "NaN",
    });
  });

  it("decodes the tokens as numbers and leaves strings alone", () => {
    const [packet] = decodeAll(['27["fitResult",{"loss":NaN,"x":[Infinity,-Infinity],"s":"NaN"}]']);
    expect(packet).toMatchObject({ type: PacketType.EVENT, id: 7, nsp: "/" });
    const [, payload] = packet.data as [string, { loss: number; x: number[]; s: string }];
    expect(payload.loss).toBeNaN();
    expect(payload.x).toEqual([Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY]);
    expect(payload.s).toBe("NaN");
  });

  it("handles a binary packet whose JSON part has a NaN, and the packets after it", () => {
    const data = Buffer.from([1, 2, 3, 4]);
    const [text, attachment] = new Encoder().encode({
      type: PacketType.EVENT,
      nsp: "/",
      id: 3,
      data: ["fitResult", { loss: 1234.5, data }],
    });
    expect(typeof text).toBe("string");
    const withNaN = (text as string).replace('"loss":1234.5', '"loss":NaN');
    const packets = decodeAll([withNaN, attachment, '21["next",{"ok":1}]']);
    expect(packets).toHaveLength(2);
    const [, payload] = packets[0].data as [string, { loss: number; data: Buffer }];
    expect(payload.loss).toBeNaN();
    expect([...payload.data]).toEqual([1, 2, 3, 4]);
    expect(packets[1].data).toEqual(["next", { ok: 1 }]);
  });

  it("still refuses text that is not JSON for another reason", () => {
    expect(() => decodeAll(['2["a",{]'])).toThrow(/invalid payload/);
    expect(() => decodeAll(['2["a",NaN NaN]'])).toThrow(/invalid payload/);
  });
});
