/** The datasets fedsim loads itself (common/data/registry.ts); registered ones come on top. */
export type DatasetName = "mnist" | "fashion-mnist" | "idx" | "csv" | "synthetic";

export const DATASET_NAMES: readonly DatasetName[] = ["mnist", "fashion-mnist", "idx", "csv", "synthetic"];

export function isDatasetName(name: string): name is DatasetName {
  return (DATASET_NAMES as readonly string[]).includes(name);
}
