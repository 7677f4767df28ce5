import { Decoder, Encoder, type Packet } from "socket.io-parser";

/**
 * Socket.IO's packet parser, except that the bare tokens NaN, Infinity and -Infinity in a packet's
 * JSON decode to those numbers instead of failing the packet. Python's `json` writes them for
 * non-finite floats, and the default decoder throws on them, which makes Socket.IO close the whole
 * connection: one NaN metric would cost a client its round as a disconnect. Decoded as numbers, they
 * reach the event's zod schema, which refuses them by field name in the ack, and the connection
 * stays up. Only a packet whose standard JSON.parse already failed is looked at again, so valid
 * packets (and binary attachments, which never go through JSON) take the default path unchanged.
 */

/** JSON strings that stand for the non-finite numbers while the rewritten text is parsed. */
const SENTINELS: readonly (readonly [token: string, json: string, value: number])[] = [
  ["-Infinity", '"\\u0000-Infinity"', Number.NEGATIVE_INFINITY],
  ["Infinity", '"\\u0000Infinity"', Number.POSITIVE_INFINITY],
  ["NaN", '"\\u0000NaN"', Number.NaN],
];
const REVIVED = new Map(SENTINELS.map(([token, , value]) => [`\u0000${token}`, value]));

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const MINUS = 0x2d;
const CAPITAL_I = 0x49;
const CAPITAL_N = 0x4e;

/**
 * `text` with every NaN/Infinity/-Infinity token outside JSON strings replaced by a sentinel
 * string, or null when there is none (the text's failure to parse has another cause).
 */
export function nonFiniteTokensAsStrings(text: string): string | null {
  let out = "";
  let copied = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === BACKSLASH) i++;
      else if (c === QUOTE) inString = false;
      continue;
    }
    if (c === QUOTE) {
      inString = true;
      continue;
    }
    if (c !== MINUS && c !== CAPITAL_I && c !== CAPITAL_N) continue;
    const match = SENTINELS.find(([token]) => text.startsWith(token, i));
    if (!match) continue;
    out += text.slice(copied, i) + match[1];
    i += match[0].length - 1;
    copied = i + 1;
  }
  return copied === 0 ? null : out + text.slice(copied);
}

/** JSON.parse reviver that turns the sentinels back into the numbers they stand for. */
export function reviveNonFinite(_key: string, value: unknown): unknown {
  if (typeof value === "string" && value.charCodeAt(0) === 0) return REVIVED.get(value) ?? value;
  return value;
}

export class LenientDecoder extends Decoder {
  /** Decodes the rewritten packets, with the reviver (never used on valid packets). */
  private readonly lenient = new Decoder({ reviver: reviveNonFinite });
  /** True while `lenient` holds a binary packet whose attachments are still to come. */
  private forwarding = false;

  constructor() {
    super();
    this.lenient.on("decoded", (packet: Packet) => {
      this.forwarding = false;
      this.emitReserved("decoded", packet);
    });
  }

  override add(obj: unknown): void {
    if (this.forwarding) {
      this.lenient.add(obj);
      return;
    }
    if (typeof obj !== "string") {
      super.add(obj);
      return;
    }
    try {
      super.add(obj);
    } catch (err) {
      const rewritten = nonFiniteTokensAsStrings(obj);
      if (rewritten === null) throw err;
      // Set first: a packet without attachments is emitted (and this reset) within add().
      this.forwarding = true;
      try {
        this.lenient.add(rewritten);
      } catch {
        this.forwarding = false;
        throw err;
      }
    }
  }

  override destroy(): void {
    this.forwarding = false;
    this.lenient.destroy();
    super.destroy();
  }
}

/** The `parser` option for both `new Server(…)` and `io(…)`. */
export const lenientParser = { Encoder, Decoder: LenientDecoder };
