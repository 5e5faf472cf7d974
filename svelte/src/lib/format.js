// Numbers as the page shows them.

/** A short signed number: 3 significant digits, at most 3 decimals, "−" for minus. */
export function number(value) {
  if (value === null || value === undefined || Number.isNaN(value)) return "–";
  const abs = Math.abs(value);
  const text = abs >= 100 ? abs.toFixed(0) : abs >= 1 ? abs.toFixed(2) : abs.toFixed(3);
  return (value < 0 && Number(text) !== 0 ? "−" : "") + text;
}

/** 0.4567 -> "46%" */
export function percent(value) {
  return `${Math.round(value * 100)}%`;
}

/** A scale value of any size: 3 significant digits ("0.000412", "1.23e-7"), "−" for minus. */
export function significant(value) {
  if (value === null || value === undefined || !Number.isFinite(value)) return "–";
  if (value === 0) return "0";
  const abs = Math.abs(value);
  const text = abs >= 1e-5 && abs < 1e5 ? String(Number(abs.toPrecision(3))) : abs.toExponential(2);
  return (value < 0 ? "−" : "") + text;
}
