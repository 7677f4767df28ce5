/** The zoo's model names (common/models/zoo.ts builds them), apart from tfjs so name checks stay light. */
export type ModelName = "mnist-2nn" | "mnist-cnn" | "tiny-cnn" | "tiny-mlp" | "logreg";

export const MODEL_NAMES: readonly ModelName[] = ["mnist-2nn", "mnist-cnn", "tiny-cnn", "tiny-mlp", "logreg"];

export function isModelName(name: string): name is ModelName {
  return (MODEL_NAMES as readonly string[]).includes(name);
}
