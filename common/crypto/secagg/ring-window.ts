import { ErrorCode, FedsimError } from "../../errors.js";

/**
 * Word-wise addition mod 2^32 over a fixed-size window, the inner loop of SecAgg masking and
 * summing. A JavaScript loop over Uint32Arrays does one word per step, which costs more than
 * OpenSSL takes to produce the keystream being added; WebAssembly SIMD adds four words per
 * instruction. Callers copy a slice of their vector into `acc`, add operands through `operand`,
 * and copy `acc` back: the copies are memcpy, far cheaper than the scalar loop they replace.
 *
 * The kernel is built here from its opcodes rather than shipped as a binary, so what it does is
 * readable in this file:
 *
 *   (func $add (param $dst i32) (param $src i32) (param $bytes i32)   ;; $sub: i32x4.sub
 *     (block $done
 *       (br_if $done (i32.eqz (local.get $bytes)))
 *       (loop $next
 *         (v128.store (local.get $dst)
 *           (i32x4.add (v128.load (local.get $dst)) (v128.load (local.get $src))))
 *         (local.set $dst (i32.add (local.get $dst) (i32.const 16)))
 *         (local.set $src (i32.add (local.get $src) (i32.const 16)))
 *         (br_if $next (local.tee $bytes (i32.sub (local.get $bytes) (i32.const 16)))))))
 */

export interface RingWindow {
  /** Capacity in words of `acc` and of `operand`. */
  readonly words: number;
  /** True when the WebAssembly SIMD kernel runs, false for the JavaScript loop. */
  readonly simd: boolean;
  /** The accumulator. */
  readonly acc: Uint32Array;
  /** The operand; `operandBytes` is the same memory as bytes, for copying keystream in. */
  readonly operand: Uint32Array;
  readonly operandBytes: Uint8Array;
  /** acc[0..count) += operand[0..count) mod 2^32. */
  add(count: number): void;
  /** acc[0..count) −= operand[0..count) mod 2^32. */
  sub(count: number): void;
  /** Zeroes both halves (they may hold keystream, i.e. mask material). */
  clear(): void;
}

const WASM_PAGE_BYTES = 65_536;
const LANE_WORDS = 4;

/**
 * A window of `words` words (a multiple of 4). `simd: false` forces the plain JavaScript loop,
 * which is also the fallback where WebAssembly SIMD is missing; both give the same results.
 */
export function createRingWindow(words: number, options: { simd?: boolean } = {}): RingWindow {
  if (!Number.isInteger(words) || words <= 0 || words % LANE_WORDS !== 0) {
    throw new FedsimError(
      ErrorCode.INTERNAL,
      `ring window size must be a positive multiple of ${LANE_WORDS} words`,
    );
  }
  const kernel = (options.simd ?? true) ? simdKernel() : null;
  const bytes = words * 4;
  let buffer: ArrayBuffer;
  let add: (count: number) => void;
  let sub: (count: number) => void;
  if (kernel) {
    const exports = new kernel.api.Instance(kernel.module).exports as KernelExports;
    const pages = Math.ceil((2 * bytes) / WASM_PAGE_BYTES);
    exports.memory.grow(pages - exports.memory.buffer.byteLength / WASM_PAGE_BYTES);
    buffer = exports.memory.buffer;
    add = (count) => {
      const vectorWords = requireCount(count, words) & ~(LANE_WORDS - 1);
      exports.add(0, bytes, vectorWords * 4);
      for (let i = vectorWords; i < count; i++) acc[i] += operand[i];
    };
    sub = (count) => {
      const vectorWords = requireCount(count, words) & ~(LANE_WORDS - 1);
      exports.sub(0, bytes, vectorWords * 4);
      for (let i = vectorWords; i < count; i++) acc[i] -= operand[i];
    };
  } else {
    buffer = new ArrayBuffer(2 * bytes);
    add = (count) => {
      requireCount(count, words);
      for (let i = 0; i < count; i++) acc[i] += operand[i];
    };
    sub = (count) => {
      requireCount(count, words);
      for (let i = 0; i < count; i++) acc[i] -= operand[i];
    };
  }
  const acc = new Uint32Array(buffer, 0, words);
  const operand = new Uint32Array(buffer, bytes, words);
  return {
    words,
    simd: kernel !== null,
    acc,
    operand,
    operandBytes: new Uint8Array(buffer, bytes, bytes),
    add,
    sub,
    clear: () => new Uint8Array(buffer, 0, 2 * bytes).fill(0),
  };
}

const shared = new Map<number, RingWindow>();

/**
 * One window per size for the whole process. Every user is synchronous from filling the window
 * to reading it back, so no two can interleave; each clears it when done.
 */
export function sharedRingWindow(words: number): RingWindow {
  let window = shared.get(words);
  if (!window) {
    window = createRingWindow(words);
    shared.set(words, window);
  }
  return window;
}

function requireCount(count: number, words: number): number {
  if (!Number.isInteger(count) || count < 0 || count > words) {
    throw new FedsimError(ErrorCode.INTERNAL, `count must be an integer in [0, ${words}] (got ${count})`);
  }
  return count;
}

/** The part of the WebAssembly JavaScript API used here (lib ES2023 declares none of it). */
interface WasmApi {
  validate(binary: Uint8Array): boolean;
  Module: new (binary: Uint8Array) => object;
  Instance: new (module: object) => { exports: unknown };
}

interface KernelExports {
  memory: { buffer: ArrayBuffer; grow(pages: number): number };
  add: (dst: number, src: number, bytes: number) => void;
  sub: (dst: number, src: number, bytes: number) => void;
}

let compiled: { api: WasmApi; module: object } | null | undefined;

/** The compiled kernel, or null where this runtime has no WebAssembly SIMD. */
function simdKernel(): { api: WasmApi; module: object } | null {
  if (compiled === undefined) {
    const api = (globalThis as { WebAssembly?: WasmApi }).WebAssembly;
    const binary = kernelBinary();
    compiled = api?.validate(binary) ? { api, module: new api.Module(binary) } : null;
  }
  return compiled;
}

const I32 = 0x7f;
const OP = {
  block: 0x02,
  loop: 0x03,
  end: 0x0b,
  brIf: 0x0d,
  localGet: 0x20,
  localSet: 0x21,
  localTee: 0x22,
  i32Const: 0x41,
  i32Eqz: 0x45,
  i32Add: 0x6a,
  i32Sub: 0x6b,
  emptyBlockType: 0x40,
} as const;
/** SIMD opcodes: 0xfd prefix, LEB128 sub-opcode, then alignment (2^4 = 16 bytes) and offset 0. */
const V128_LOAD = [0xfd, 0x00, 0x04, 0x00];
const V128_STORE = [0xfd, 0x0b, 0x04, 0x00];
const I32X4_ADD = [0xfd, 0xae, 0x01];
const I32X4_SUB = [0xfd, 0xb1, 0x01];

function kernelBinary(): Uint8Array {
  const body = (lanewise: number[]) => {
    const [dst, src, count] = [0, 1, 2];
    const step = (local: number, op: number) => [OP.localGet, local, OP.i32Const, 16, op, OP.localSet, local];
    // biome-ignore format: grouped by instruction, as in the text format above
    const code = [
      0x00, // no locals besides the parameters
      OP.block, OP.emptyBlockType,
      OP.localGet, count, OP.i32Eqz, OP.brIf, 0,
      OP.loop, OP.emptyBlockType,
      OP.localGet, dst, OP.localGet, dst, ...V128_LOAD, OP.localGet, src, ...V128_LOAD, ...lanewise, ...V128_STORE,
      ...step(dst, OP.i32Add),
      ...step(src, OP.i32Add),
      OP.localGet, count, OP.i32Const, 16, OP.i32Sub, OP.localTee, count, OP.brIf, 0,
      OP.end, OP.end, OP.end,
    ];
    return [...leb128(code.length), ...code];
  };
  const name = (text: string) => [...leb128(text.length), ...new TextEncoder().encode(text)];
  return new Uint8Array([
    ...[0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00], // "\0asm", version 1
    ...section(1, vector([[0x60, 3, I32, I32, I32, 0]])), // type 0: (i32, i32, i32) -> ()
    ...section(3, vector([[0], [0]])), // two functions of type 0
    ...section(5, vector([[0x00, 1]])), // one memory, at least one page, grown by the caller
    ...section(
      7,
      vector([
        [...name("memory"), 0x02, 0],
        [...name("add"), 0x00, 0],
        [...name("sub"), 0x00, 1],
      ]),
    ),
    ...section(10, vector([body(I32X4_ADD), body(I32X4_SUB)])),
  ]);
}

function section(id: number, content: number[]): number[] {
  return [id, ...leb128(content.length), ...content];
}

function vector(items: number[][]): number[] {
  return [...leb128(items.length), ...items.flat()];
}

function leb128(value: number): number[] {
  const out: number[] = [];
  let rest = value;
  do {
    let byte = rest & 0x7f;
    rest >>>= 7;
    if (rest !== 0) byte |= 0x80;
    out.push(byte);
  } while (rest !== 0);
  return out;
}
