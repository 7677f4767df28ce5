// @ts-check
/**
 * Worker thread for update envelopes (common/crypto/envelope-pool.ts): seals or opens one chunk
 * with tweetnacl's secretbox (XSalsa20-Poly1305), so the chunks of a large update use every core.
 *
 * Plain JavaScript on purpose: a worker thread runs a file as Node loads it, and this one must run
 * the same under the test runner (TypeScript sources) and from dist/ (copied by `npm run build`).
 * It knows nothing of the envelope format: the key and each chunk's nonce come from the caller.
 *
 * Request:  { id, op: "seal" | "open", key (32 bytes), nonce (24 bytes), data (transferred) }
 * Reply:    { id, ok: true, data, offset, hash? } with data transferred, the chunk at data[offset..]
 *           (seal: the nacl.secretbox output, with `hash` = SHA-256 of it; open: the plaintext),
 *           or { id, ok: false } when a chunk does not authenticate.
 */
import { createHash } from "node:crypto";
import { parentPort } from "node:worker_threads";
import nacl from "tweetnacl";

const { crypto_secretbox, crypto_secretbox_open } = nacl.lowlevel;
// crypto_secretbox works on buffers with 32 zero bytes in front of the message; its output starts
// with 16 zero bytes, then the 16-byte tag and the ciphertext (what nacl.secretbox returns).
const ZERO_BYTES = 32;
const BOX_ZERO_BYTES = 16;

if (!parentPort) throw new Error("envelope-worker.js runs only as a worker thread");
const port = parentPort;

port.on(
  "message",
  (/** @type {{ id: number, op: string, key: Uint8Array, nonce: Uint8Array, data: Uint8Array }} */ job) => {
    const { id, op, key, nonce, data } = job;
    try {
      if (op === "seal") {
        // In place: the stream cipher XORs block by block, and the tag is computed after it.
        const box = new Uint8Array(ZERO_BYTES + data.length);
        box.set(data, ZERO_BYTES);
        data.fill(0);
        crypto_secretbox(box, box, box.length, nonce, key);
        const hash = new Uint8Array(createHash("sha256").update(box.subarray(BOX_ZERO_BYTES)).digest());
        port.postMessage({ id, ok: true, data: box, offset: BOX_ZERO_BYTES, hash }, [box.buffer]);
      } else {
        const box = new Uint8Array(BOX_ZERO_BYTES + data.length);
        box.set(data, BOX_ZERO_BYTES);
        // In place too: the tag is checked before anything is decrypted.
        if (crypto_secretbox_open(box, box, box.length, nonce, key) !== 0) {
          port.postMessage({ id, ok: false });
        } else {
          port.postMessage({ id, ok: true, data: box, offset: ZERO_BYTES }, [box.buffer]);
        }
      }
    } finally {
      key.fill(0);
    }
  },
);
