// The report card (Manifest.report, issue 21) and the model-editing ablation (Manifest.ablation)
// as the page uses them: which row belongs to a method, which evaluated frame is shown, each
// check's verdict, and the words that say which way is better.

import { number, percent } from "./format.js";

/** @typedef {import("./contract.js").ReportCard} ReportCard */
/** @typedef {import("./contract.js").ReportRow} ReportRow */
/** @typedef {import("./contract.js").MethodEntry} MethodEntry */
/** @typedef {import("./contract.js").EpisodeStats} EpisodeStats */

/** The checks, in the table's order, and what each asks (shown under the table). */
export const CHECKS = /** @type {const} */ (["sanity", "deletion", "insertion", "completeness", "objects", "pointing"]);

/** @typedef {"pass" | "fail" | "n/a"} Verdict */

/** A row's verdict on one check: in `passes`, in `fails`, or neither (did not apply).
 * @param {ReportRow} row @param {string} check @returns {Verdict} */
export const verdict = (row, check) => (row.passes.includes(check) ? "pass" : row.fails.includes(check) ? "fail" : "n/a");

/**
 * The report row of a method: the one at the shown layer (by label), else at the input, else its
 * first; null when the report has none.
 * @param {ReportCard | null | undefined} report @param {MethodEntry} method @param {string} layerLabel
 */
export function rowFor(report, method, layerLabel) {
  const rows = report?.rows.filter((r) => r.method === method.name) ?? [];
  return rows.find((r) => r.site === layerLabel) ?? rows.find((r) => r.site === "input") ?? rows[0] ?? null;
}

/** The index into report.frames of (trajectory, frame), or -1. @param {ReportCard} report */
export const frameIndex = (report, trajectory, frame) =>
  report.frames.findIndex(([t, f]) => t === trajectory && f === frame);

/**
 * The evaluated frame nearest (trajectory, frame): in the same trajectory if it has one, else the
 * first; null when none was evaluated. @param {ReportCard} report
 * @returns {[number, number] | null}
 */
export function nearestFrame(report, trajectory, frame) {
  const here = report.frames.filter(([t]) => t === trajectory);
  if (!here.length) return report.frames[0] ?? null;
  return here.reduce((best, f) => (Math.abs(f[1] - frame) < Math.abs(best[1] - frame) ? f : best));
}

/** The last element (the sanity check's final step), or null. @param {readonly number[]} values */
export const last = (values) => (values.length ? values[values.length - 1] : null);

/** A share as the report card shows it (object mass, pointing), "n/a" where null. */
export const share = (/** @type {number | null} */ value) => (value === null || value === undefined ? "n/a" : percent(value));

/** A number as the report card shows it, "n/a" where null. */
export const score = (/** @type {number | null} */ value) => (value === null || value === undefined ? "n/a" : number(value));

/**
 * Whether an AUC beats a reference: lower for deletion, higher for insertion.
 * @param {"deletion" | "insertion"} kind @param {number} value @param {number} reference
 */
export const beats = (kind, value, reference) => (kind === "deletion" ? value < reference : value > reference);

/**
 * Removing a feature: the return with it and without it, and the shares of how episodes ended.
 * @param {EpisodeStats} original @param {EpisodeStats} without
 */
export function ablationText(original, without) {
  return {
    change: `removing this feature: return ${number(original.mean_return)} → ${number(without.mean_return)}`,
    interval: `± ${number(without.interval)}`,
    detail:
      `return ${number(original.mean_return)} ± ${number(original.interval)} over ${original.episodes} episodes; ` +
      `without this feature ${number(without.mean_return)} ± ${number(without.interval)} over ${without.episodes} (95% intervals). ` +
      `Timeouts ${percent(original.timeouts)} → ${percent(without.timeouts)}, deaths ${percent(original.deaths)} → ${percent(without.deaths)}` +
      (original.completion !== null && without.completion !== null
        ? `, levels completed ${percent(original.completion)} → ${percent(without.completion)}.`
        : "."),
  };
}
