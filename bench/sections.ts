/** Every section of the suite, in the order a full run measures them; `--only` picks some. */
export const SECTION_NAMES = [
  "training",
  "aggregation",
  "privacy",
  "transfer",
  "roundOverhead",
  "parallel",
  "timeToAccuracy",
  "poolSession",
  "asyncSimulation",
  "scaleOut",
] as const;
export type SectionName = (typeof SECTION_NAMES)[number];

/** The sections named by `--only a,b` (in suite order), or all of them without it. */
export function parseSections(only: string | undefined): SectionName[] {
  if (only === undefined) return [...SECTION_NAMES];
  const requested = only
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s !== "");
  const unknown = requested.filter((s) => !(SECTION_NAMES as readonly string[]).includes(s));
  if (unknown.length > 0 || requested.length === 0) {
    throw new Error(`--only takes a comma-separated list of ${SECTION_NAMES.join(", ")}; got "${only}"`);
  }
  return SECTION_NAMES.filter((s) => requested.includes(s));
}
