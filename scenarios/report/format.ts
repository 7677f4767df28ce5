/** Number and text formatting shared by the report page, the compare page and the CLI table. */

export function escapeHtml(text: string): string {
  return text
    .replace(/&/g, "&amp;")
    .replace(/</g, "&lt;")
    .replace(/>/g, "&gt;")
    .replace(/"/g, "&quot;")
    .replace(/'/g, "&#39;");
}

export function formatPercent(value: number, digits = 1): string {
  return Number.isFinite(value) ? `${(value * 100).toFixed(digits)} %` : "—";
}

export function formatNumber(value: number | undefined, digits = 4): string {
  if (value === undefined) return "—";
  if (Number.isNaN(value)) return "—";
  if (!Number.isFinite(value)) return value > 0 ? "∞" : "−∞";
  return value.toFixed(digits);
}

/** 42.3 s, 4 min 12 s, 1 h 02 min. */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds)) return "—";
  if (seconds < 60) return `${seconds.toFixed(1)} s`;
  const whole = Math.round(seconds);
  if (whole < 3600) return `${Math.floor(whole / 60)} min ${String(whole % 60).padStart(2, "0")} s`;
  return `${Math.floor(whole / 3600)} h ${String(Math.floor((whole % 3600) / 60)).padStart(2, "0")} min`;
}

const BYTE_UNITS = [
  { unit: "GB", size: 1e9 },
  { unit: "MB", size: 1e6 },
  { unit: "kB", size: 1e3 },
  { unit: "B", size: 1 },
];

/** The largest decimal byte unit that keeps `max` at 1 or more, for one axis. */
export function byteUnitFor(max: number): { unit: string; size: number } {
  return BYTE_UNITS.find((u) => max >= u.size) ?? { unit: "B", size: 1 };
}

/**
 * Rounds to a target in words: "round 20" when a round's evaluation reached it; "in round 4
 * (3.5)" for an interpolated crossing between rounds 3 and 4; "initial model" when it was met
 * before training; "not reached" for null.
 */
export function formatRounds(rounds: number | null): string {
  if (rounds === null) return "not reached";
  if (rounds === 0) return "initial model";
  if (Number.isInteger(rounds)) return `round ${rounds}`;
  return `in round ${Math.ceil(rounds)} (${rounds.toFixed(1)})`;
}

/** Client ids are long random strings; a label or the first 8 characters read better on an axis. */
export function shortClientName(clientId: string, label?: string): string {
  if (label !== undefined && label !== "") return label;
  return clientId.length > 10 ? `${clientId.slice(0, 8)}…` : clientId;
}

/** δ is tiny: 1e-5 rather than 0.00001. */
export function formatDelta(delta: number): string {
  return delta > 0 && delta < 1e-3 ? delta.toExponential() : String(delta);
}
