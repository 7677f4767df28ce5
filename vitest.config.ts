import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["tests/**/*.test.ts"],
    // tfjs training on 2 cores is slow; integration tests get room, unit tests finish fast anyway.
    testTimeout: 120_000,
    hookTimeout: 120_000,
    // One fork per core: tests that train models compete for CPU otherwise.
    pool: "forks",
    maxWorkers: 2,
  },
});
