// Types for tests/native-setup.test.ts (native/*.mjs run before anything is compiled, so they are JavaScript).
export type Piece = "compiler" | "dnnl";

export interface Facts {
  platform: string;
  osFamilies: string[];
  hasAptGet: boolean;
  isRoot: boolean;
  canSudo: boolean;
  missing: Piece[];
  optOut: boolean;
  npmCommand: string | undefined;
}

export type Plan =
  | { action: "none" }
  | { action: "install"; packages: string[]; sudo: boolean; command: string }
  | { action: "notice"; reason: string; remedy: string };

export const APT_PACKAGES: Record<Piece, string>;
export function dnnlHeaderDirs(env?: NodeJS.ProcessEnv): string[];
export function missingPieces(env?: NodeJS.ProcessEnv): Piece[];
export function osFamilies(text: string): string[];
export function runQuietly(
  command: string,
  args: string[],
  options: { timeoutMs: number; env?: NodeJS.ProcessEnv },
): Promise<{ status: number | null; output: string; timedOut: boolean }>;
export function gatherFacts(env?: NodeJS.ProcessEnv): Promise<Facts>;
export function planSystemPackages(facts: Facts): Plan;
export function installSystemPackages(
  plan: { packages: string[]; sudo: boolean },
  env?: NodeJS.ProcessEnv,
  timeoutMs?: number,
): Promise<{ ok: true } | { ok: false; detail: string }>;
