import { expect } from "vitest";
import { FedsimError } from "../../common/errors.js";

/** Asserts that `fn` throws a FedsimError with `code` whose message contains every fragment. */
export function expectError(fn: () => unknown, code: string, ...fragments: string[]): void {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(FedsimError);
    expect((err as FedsimError).code).toBe(code);
    for (const fragment of fragments) expect((err as FedsimError).message).toContain(fragment);
    return;
  }
  throw new Error("expected a FedsimError");
}
