import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import {
  README_END,
  README_START,
  readmeFigures,
  withReadmeFigures,
} from "../bench/report/readme-figures.js";

const results = {
  generatedAt: "2026-12-06T12:00:00.000Z",
  environment: { cpuModel: "AMD EPYC", cores: 2, loadAverage: { start: 3.1, end: 4 } },
  reference: { blasChoicesTried: ["auto", "Haswell", "SkylakeX"] },
  targets: [
    { id: "training-cnn-b10" as const, measured: 1.61, status: "met" as const },
    { id: "training-cnn-b50" as const, measured: 1.42, status: "missed" as const },
    { id: "aggregation" as const, measured: null, status: "not measured" as const },
  ],
};

describe("the README's benchmark figures", () => {
  it("quote latest.json's figures with its date, CPU model and load", () => {
    const text = readmeFigures(results);
    expect(text).toContain("2026-12-06, AMD EPYC with 2 cores, load average 3.1)");
    const loaded = readmeFigures({
      ...results,
      measured: {
        training: { quick: true, loadAverage: 18.6 },
        aggregation: { quick: false, loadAverage: 20 },
      },
    });
    expect(loaded).toContain("load average 18.6–20 while these sections ran, some sections in --quick mode");
    expect(text).toContain("1.61× PyTorch's speed at batch 10 and 1.42× at batch 50");
    expect(text).toContain("aggregation runs at (not measured)");
    expect(text).toContain("fastest of 3 OpenBLAS configurations");
    expect(text).toContain("1 of the 3 targets are met");
  });

  it("replace only what lies between the markers, and nothing without them", () => {
    const readme = `before\n${README_START}\nstale 9.9×\n${README_END}\nafter\n`;
    const updated = withReadmeFigures(readme, results);
    expect(updated.startsWith(`before\n${README_START}\n`)).toBe(true);
    expect(updated.endsWith(`\n${README_END}\nafter\n`)).toBe(true);
    expect(updated).not.toContain("9.9×");
    expect(withReadmeFigures("no markers", results)).toBe("no markers");
  });

  it("in the committed README match the committed bench/results/latest.json", () => {
    const readme = readFileSync(new URL("../README.md", import.meta.url), "utf8");
    const latest = JSON.parse(readFileSync(new URL("../bench/results/latest.json", import.meta.url), "utf8"));
    expect(readme).toContain(README_START);
    expect(withReadmeFigures(readme, latest)).toBe(readme);
  });
});
