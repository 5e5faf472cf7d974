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
