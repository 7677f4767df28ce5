import { createRoundKeyPair, EnvelopeOpener } from "../../common/crypto/envelope.js";
import type { RoundPlugin, RoundPreparation } from "../round-plugin.js";

/**
 * Per-round envelopes as a round plugin: a fresh server key pair each round, whose public half
 * goes to the sampled clients and whose opener the loop uses on their sealed updates. It hides
 * updates from the network, not from the coordinator, so it asks nothing else of the loop.
 */
export class EnvelopePlugin implements RoundPlugin {
  private opener: EnvelopeOpener | null = null;

  prepareRound(round: number): RoundPreparation {
    this.opener?.close();
    const keys = createRoundKeyPair();
    const opener = new EnvelopeOpener({ round, secretKey: keys.secretKey });
    this.opener = opener;
    return { envelope: { publicKey: keys.publicKey, open: (sealed, signer) => opener.open(sealed, signer) } };
  }

  endRound(): void {
    this.opener?.close();
    this.opener = null;
  }
}
