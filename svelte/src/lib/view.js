// The attribution rows and the compare view in the URL, so that a reload (or a shared link)
// shows the same view:
//   rows=1.ig,2.gradcam.g4.o50,3+1.perturbation   one token a row, comma-separated, parts split by ".":
//        output (1-indexed; "actor+critic" as "A+C"), method name, then, when they differ from the
//        defaults, g<gain as a slider step: 4 steps an octave, so g4 is x2, g-5 about x0.42> and
//        o<observation opacity in percent>; integers only, so no part holds a "."
//   compare=2   the compare view, explaining output 2 (absent: no compare view)

import { actorCritic, methodList } from "./methods.js";
import { gainOf, stepOf } from "./levels.js";

/** @typedef {import("./contract.js").Manifest} Manifest */
/** @typedef {import("./contract.js").MethodEntry} MethodEntry */
/** @typedef {{output: number, method: number, pair: boolean, gain: number, opacity: number}} RowView */

const SAFE_NAME = /^[A-Za-z0-9_+-]+$/;

/** How a method is written in the URL: its name, or its key prefix if the name has separators. */
const methodToken = (/** @type {MethodEntry} */ m) => (SAFE_NAME.test(m.name) ? m.name : m.key_prefix);


/**
 * @param {Manifest} manifest @param {RowView} row
 * @param {{gain: number, opacity: number}} defaults
 */
export function encodeRow(manifest, row, defaults) {
  const method = methodList(manifest)[row.method];
  const pair = row.pair && method ? actorCritic(manifest, method) : null;
  const parts = [pair ? `${pair.actor + 1}+${pair.critic + 1}` : String(row.output + 1)];
  if (method) parts.push(methodToken(method));
  if (row.gain !== defaults.gain) parts.push(`g${stepOf(row.gain)}`);
  if (row.opacity !== defaults.opacity) parts.push(`o${Math.round(row.opacity * 100)}`);
  return parts.join(".");
}

/** The rows' URL value (commas left readable). */
export function encodeRows(manifest, rows, defaults) {
  return rows.map((row) => encodeURIComponent(encodeRow(manifest, row, defaults))).join(",");
}

/**
 * One row token back, or null if it does not name a valid output and method of this manifest.
 * @param {Manifest} manifest @param {string} token @param {{gain: number, opacity: number}} defaults
 * @param {(output: number, pair: boolean) => number} fallbackMethod  the method of a token without one
 * @returns {RowView | null}
 */
export function decodeRow(manifest, token, defaults, fallbackMethod) {
  const [outputText, methodText, ...options] = token.split(".");
  const methods = methodList(manifest);
  const single = /^\d+$/.exec(outputText ?? "");
  const both = /^(\d+)\+(\d+)$/.exec(outputText ?? "");
  if (!single && !both) return null;
  const output = Number(single ? single[0] : both?.[1]) - 1;
  if (!(output >= 0 && output < manifest.outputs.length)) return null;
  const pair = Boolean(both);
  let method = methodText ? methods.findIndex((m) => methodToken(m) === methodText || m.key_prefix === methodText) : fallbackMethod(output, pair);
  if (method < 0) return null;
  const entry = methods[method];
  if (pair) {
    const expected = actorCritic(manifest, entry);
    if (!expected || expected.actor !== output || expected.critic !== Number(both?.[2]) - 1) return null;
  } else if (!entry.outputs.includes(output)) return null;
  const row = { output, method, pair, gain: defaults.gain, opacity: defaults.opacity };
  for (const option of options) {
    const value = option.length > 1 ? Number(option.slice(1)) : NaN;
    if (option.startsWith("g") && Number.isFinite(value)) row.gain = gainOf(stepOf(gainOf(value)));
    else if (option.startsWith("o") && value >= 0 && value <= 100) row.opacity = value / 100;
  }
  return row;
}

/** Every valid row of a rows= value (invalid tokens are skipped). */
export function decodeRows(manifest, text, defaults, fallbackMethod) {
  return text
    .split(",")
    .map((token) => decodeRow(manifest, token.trim(), defaults, fallbackMethod))
    .filter((row) => row !== null);
}
