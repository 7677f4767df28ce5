export {
  computeEpsilon,
  type EpsilonQuery,
  type LedgerEntry,
  type NoiseQuery,
  noiseForTargetEpsilon,
  RdpAccountant,
} from "./accountant.js";
export {
  AdaptiveClipping,
  type AdaptiveClippingOptions,
  type AdaptiveClippingState,
  clippedBit,
  updateNoiseMultiplier,
} from "./adaptive.js";
export { type ClipResult, clipToNorm, l2Norm, sumClipped } from "./clip.js";
export { erfc, logAdd, logErfc, logSub } from "./logmath.js";
export { addGaussianNoise, cryptoNormalSource, type NormalSource, seededNormalSource } from "./noise.js";
export {
  type Conversion,
  computeRdp,
  DEFAULT_ORDERS,
  type EpsilonResult,
  epsilonBalle,
  epsilonClassic,
  epsilonFloor,
  rdpOfSampledGaussian,
  rdpToEpsilon,
} from "./rdp.js";
