import { ErrorCode, FedsimError } from "../errors.js";

/**
 * Parameter checks shared by the DP modules. Each refusal names the parameter, because a privacy
 * guarantee computed from a silently clamped or NaN parameter would be a false statement.
 */
export function invalid(name: string, rule: string, value: unknown): FedsimError {
  return new FedsimError(ErrorCode.INVALID_CONFIG, `${name} must be ${rule} (got ${String(value)})`);
}

export function requireFinite(name: string, value: number): void {
  if (typeof value !== "number" || !Number.isFinite(value)) throw invalid(name, "a finite number", value);
}

export function requirePositive(name: string, value: number): void {
  if (typeof value !== "number" || !Number.isFinite(value) || value <= 0) {
    throw invalid(name, "a finite number > 0", value);
  }
}

export function requireNonNegative(name: string, value: number): void {
  if (typeof value !== "number" || !Number.isFinite(value) || value < 0) {
    throw invalid(name, "a finite number >= 0", value);
  }
}

export function requireSamplingRate(name: string, value: number): void {
  if (typeof value !== "number" || !(value >= 0 && value <= 1)) throw invalid(name, "in [0, 1]", value);
}

export function requireDelta(name: string, value: number): void {
  if (typeof value !== "number" || !(value > 0 && value < 1)) throw invalid(name, "in (0, 1)", value);
}

export function requireUnitInterval(name: string, value: number): void {
  if (typeof value !== "number" || !(value >= 0 && value <= 1)) throw invalid(name, "in [0, 1]", value);
}

export function requireStepCount(name: string, value: number): void {
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value < 0) {
    throw invalid(name, "an integer >= 0", value);
  }
}

export function requirePositiveInteger(name: string, value: number): void {
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value < 1) {
    throw invalid(name, "an integer >= 1", value);
  }
}

export type Conversion = "classic" | "balle";

export function requireConversion(name: string, value: unknown): asserts value is Conversion {
  if (value !== "classic" && value !== "balle") throw invalid(name, '"classic" or "balle"', value);
}

/** RDP orders must exceed 1: the conversions divide by (α − 1). */
export function requireOrders(name: string, orders: readonly number[]): void {
  if (!Array.isArray(orders) || orders.length === 0) throw invalid(name, "a non-empty array", orders);
  for (const order of orders) {
    if (typeof order !== "number" || !(order > 1)) throw invalid(name, "made of orders > 1", order);
  }
}
