import { ErrorCode, FedsimError } from "../errors.js";

/**
 * Parameter checks for strategy constructors. Each refusal names the parameter and its allowed
 * range, so a scenario author sees what to change without reading the code.
 */
function refuse(name: string, range: string, value: unknown): never {
  throw new FedsimError(ErrorCode.INVALID_CONFIG, `${name} must be ${range}, got ${String(value)}`);
}

/** lo ≤ value < hi (half-open: momenta and decay rates must stay below 1). */
export function requireHalfOpen(name: string, value: number, lo: number, hi: number): void {
  if (typeof value !== "number" || !(value >= lo && value < hi)) refuse(name, `in [${lo}, ${hi})`, value);
}

export function requirePositiveFinite(name: string, value: number): void {
  if (typeof value !== "number" || !Number.isFinite(value) || value <= 0) {
    refuse(name, "a finite number > 0", value);
  }
}

export function requireNonNegativeFinite(name: string, value: number): void {
  if (typeof value !== "number" || !Number.isFinite(value) || value < 0) {
    refuse(name, "a finite number ≥ 0", value);
  }
}

export function requireIntegerAtLeast(name: string, value: number, min: number): void {
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value < min) {
    refuse(name, `an integer ≥ ${min}`, value);
  }
}

/** lo < value ≤ hi (a mixing weight: 0 would never move the model, 1 replaces it). */
export function requireLeftOpen(name: string, value: number, lo: number, hi: number): void {
  if (typeof value !== "number" || !(value > lo && value <= hi)) refuse(name, `in (${lo}, ${hi}]`, value);
}
