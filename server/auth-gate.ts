import {
  type AuthMode,
  checkAuthMode,
  createChallenge,
  precheckCredentials,
  verifyHandshake,
} from "../common/crypto/auth.js";
import { decodePublicKey } from "../common/crypto/identity.js";
import type { Hello } from "../common/protocol.js";

export interface AdmittedClient {
  clientId: string;
  /** The ed25519 key the client proved it holds, used to verify its envelopes. */
  publicKey?: Uint8Array;
}

/**
 * Decides who a connecting client is. The server assigns identity; it never takes an id from the
 * client's message. `begin` either admits the client at once or asks for a signature over a
 * fresh challenge, which `finish` verifies.
 */
export interface AuthGate {
  readonly mode: AuthMode["kind"];
  begin(hello: Hello): AdmittedClient | { challenge: Uint8Array };
  finish(hello: Hello, challenge: Uint8Array, signature: Uint8Array): AdmittedClient;
}

/**
 * The gate for all three modes. A client that presents a public key is always challenged, so a
 * key-derived id ("c-…") is proof of possession; only key-less clients in open/token mode get
 * a random id at once.
 */
export function createAuthGate(mode: AuthMode): AuthGate {
  checkAuthMode(mode);
  return {
    mode: mode.kind,
    begin(hello) {
      if (hello.publicKey !== undefined) {
        precheckCredentials(mode, { publicKey: hello.publicKey, token: hello.token });
        return { challenge: createChallenge() };
      }
      const verified = verifyHandshake(mode, { token: hello.token }, new Uint8Array(0));
      return { clientId: verified.clientId };
    },
    finish(hello, challenge, signature) {
      const verified = verifyHandshake(
        mode,
        { publicKey: hello.publicKey, token: hello.token, signature },
        challenge,
      );
      return {
        clientId: verified.clientId,
        ...(verified.publicKey ? { publicKey: decodePublicKey(verified.publicKey) } : {}),
      };
    },
  };
}
