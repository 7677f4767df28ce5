// examples/dataset.ts: a custom dataset, registered by name.
import { type DatasetArrays, defineDataset } from "fedsim";

/**
 * Gaussian blobs: `classes` clusters in `features` dimensions. The loader returns plain arrays;
 * it is seeded, so every process that loads it (coordinator and pools) gets the same examples.
 */
export const blobs = defineDataset({
  name: "blobs",
  load({ seed, options }) {
    const classes = Number(options.classes ?? 4);
    const features = Number(options.features ?? 8);
    const random = mulberry32(seed);
    const centres = Array.from({ length: classes }, () =>
      Array.from({ length: features }, () => 4 * random() - 2),
    );
    const split = (n: number): DatasetArrays => {
      const x: number[] = [];
      const y: number[] = [];
      for (let i = 0; i < n; i++) {
        const label = i % classes;
        for (const c of centres[label]) x.push(c + gaussian(random));
        y.push(label);
      }
      return { x, y, exampleShape: [features], numClasses: classes };
    };
    return { train: split(800), test: split(200) };
  },
});

function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function gaussian(random: () => number): number {
  return Math.sqrt(-2 * Math.log(1 - random())) * Math.cos(2 * Math.PI * random());
}
