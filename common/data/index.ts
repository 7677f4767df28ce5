export * from "./csv.js";
export * from "./dataset.js";
export * from "./idx.js";
export * from "./mnist.js";
export * from "./partition.js";
export * from "./registry.js";
export * from "./synthetic.js";
