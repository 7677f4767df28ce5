/**
 * Secure aggregation (Bonawitz et al. 2017, with Bell et al. 2020's sparse SecAgg+ graphs) as
 * transport-free code. docs/SECAGG.md describes the rounds, what the server sees and the threat
 * model; runSecAggInMemory is the executable description of the message order.
 */
export { type SecAggClientOptions, type SecAggClientPhase, SecAggClientSession } from "./client.js";
export {
  compareIds,
  completeGraph,
  defaultDegree,
  defaultThreshold,
  MAX_SHARE_HOLDERS,
  type SecAggGraph,
  type SecAggPlusGraphOptions,
  secAggPlusGraph,
  validateGraph,
} from "./graph.js";
export { type InMemorySecAggOptions, overWire, runSecAggInMemory } from "./in-memory.js";
export {
  type AdvertiseKeysMessage,
  advertiseKeysSchema,
  bytesToVector,
  clientIdSchema,
  type EncryptedShare,
  encryptedShareSchema,
  KEY_BYTES,
  type MaskedInputMessage,
  maskedInputSchema,
  type NeighbourKeysMessage,
  NONCE_BYTES,
  neighbourKeysSchema,
  type PublicKeys,
  parseMessage,
  publicKeysSchema,
  type RevealedShare,
  type RoutedSharesMessage,
  revealedShareSchema,
  routedSharesSchema,
  SHARE_BYTES,
  type ShareKeysMessage,
  shareKeysSchema,
  type UnmaskRequestMessage,
  type UnmaskResponseMessage,
  unmaskRequestSchema,
  unmaskResponseSchema,
  vectorToBytes,
} from "./messages.js";
export {
  maskSign,
  pairwiseMaskSeed,
  shareEncryptionKey,
  type X25519Agreement,
  x25519,
  x25519Agreement,
} from "./pairwise.js";
export { addMaskInPlace, addMasksInPlace, expandMask, type MaskTerm, SEED_BYTES } from "./prg.js";
export { addMod, chooseScale, dequantizeSum, type QuantizeOptions, quantize, subMod } from "./quantize.js";
export { type SecAggServerOptions, type SecAggServerPhase, SecAggServerSession } from "./server.js";
export { combineShares, MAX_SHARES, MIN_THRESHOLD, splitSecret } from "./shamir.js";
export { type DroppedMaskKey, removeMasks } from "./unmask.js";
export {
  chooseEncoding,
  encodeWeightedVector,
  valueRange,
  type WeightedVectorEncoding,
} from "./weighted-vector.js";
