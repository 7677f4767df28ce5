import { readFileSync } from "node:fs";
import os from "node:os";
import * as tf from "@tensorflow/tfjs";

/** What the results were measured on; written next to every run's figures. */
export interface BenchEnvironment {
  node: string;
  platform: string;
  arch: string;
  cores: number;
  cpuModel: string;
  cpuFlags: { avx512f: boolean; avx2: boolean };
  memoryGiB: number;
  tfjs: string;
  /**
   * 1-minute load average when the run started and ended: other processes on a shared machine
   * slow both sides of every ratio, but not always equally.
   */
  loadAverage: { start: number; end: number | null };
}

export function cpuFlags(): { avx512f: boolean; avx2: boolean } {
  let flags = new Set<string>();
  try {
    const line = readFileSync("/proc/cpuinfo", "utf8")
      .split("\n")
      .find((l) => l.startsWith("flags"));
    flags = new Set((line?.split(":")[1] ?? "").trim().split(/\s+/));
  } catch {
    // Not Linux: no flags known, OpenBLAS is left to autodetect.
  }
  return { avx512f: flags.has("avx512f"), avx2: flags.has("avx2") };
}

export function describeEnvironment(): BenchEnvironment {
  const cpus = os.cpus();
  return {
    node: process.version,
    platform: os.platform(),
    arch: os.arch(),
    cores: os.availableParallelism?.() ?? cpus.length,
    cpuModel: cpus[0]?.model.trim() ?? "unknown",
    cpuFlags: cpuFlags(),
    memoryGiB: Number((os.totalmem() / 2 ** 30).toFixed(1)),
    tfjs: tf.version.tfjs,
    loadAverage: { start: Number(os.loadavg()[0].toFixed(2)), end: null },
  };
}
