/**
 * Preloaded (`node --expose-gc --import gc-on-signal.js`) into the edge processes the scale-out
 * section starts, so their memory can be read after a full collection rather than wherever the
 * collector happened to be: on SIGUSR2 it collects and prints its resident set size on stderr.
 * It adds nothing else to the process.
 */
process.on("SIGUSR2", () => {
  (globalThis as { gc?: () => void }).gc?.();
  process.stderr.write(`gc-on-signal: rss ${process.memoryUsage().rss}\n`);
});
