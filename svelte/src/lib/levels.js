// How strongly a payload's maps are drawn. Full colour is reached at a high percentile of the
// nonzero |attribution| over the whole trajectory's payload, divided by the row's gain: the
// maximum would let a few extreme positions wash every other frame out (faint, mostly grey
// overlays), a percentile keeps strong and weak frames readable, and the same scale for every
// frame keeps frames comparable. Exact zeros (most positions of sparse maps, and every feature
// but the few active at a position) are left out, or the percentile of a sparse map would be 0.
//
// The percentile comes from the quantised arrays: a uint8 array's values are its 256 stored
// levels times its scale, so a 256-bin count of the stored bytes is an exact histogram.

/** The percentile of nonzero |value| drawn at full colour when the gain is 1. */
export const SCALE_PERCENTILE = 0.99;

/** Gain slider: quarter-octave steps from x1/8 to x16. */
export const GAIN_STEPS_PER_OCTAVE = 4;
export const GAIN_MIN_STEP = -3 * GAIN_STEPS_PER_OCTAVE;
export const GAIN_MAX_STEP = 4 * GAIN_STEPS_PER_OCTAVE;

/** @typedef {{counts: Uint32Array, scale: number}} Levels  counts of each stored byte 0..255 */

/** Count each stored level of a uint8 array. @param {Uint8Array} stored @param {number} scale @returns {Levels} */
export function levels(stored, scale) {
  const counts = new Uint32Array(256);
  for (let i = 0; i < stored.length; i++) counts[stored[i]]++;
  return { counts, scale };
}

/**
 * The q-quantile (0..1) of the nonzero values of several quantised arrays together: each
 * level's value is level * scale. 0 if every value is zero.
 * @param {Levels[]} parts @param {number} [q]
 */
export function percentile(parts, q = SCALE_PERCENTILE) {
  /** @type {[number, number][]} [value, count] */
  const bins = [];
  let total = 0;
  for (const { counts, scale } of parts) {
    if (!(scale > 0)) continue;
    for (let level = 1; level < 256; level++) {
      if (counts[level]) {
        bins.push([level * scale, counts[level]]);
        total += counts[level];
      }
    }
  }
  if (!total) return 0;
  bins.sort((x, y) => x[0] - y[0]);
  const wanted = Math.min(Math.max(q, 0), 1) * total;
  let seen = 0;
  for (const [value, count] of bins) {
    seen += count;
    if (seen >= wanted) return value;
  }
  return bins[bins.length - 1][0];
}

/** The gain of a slider step, and back. */
export const gainOf = (step) => 2 ** (step / GAIN_STEPS_PER_OCTAVE);
export const stepOf = (gain) =>
  Math.min(Math.max(Math.round(Math.log2(gain) * GAIN_STEPS_PER_OCTAVE), GAIN_MIN_STEP), GAIN_MAX_STEP);

/** A gain as a valid slider position's gain (rounded to a step, clamped), or null if not a positive number. */
export function validGain(value) {
  return typeof value === "number" && Number.isFinite(value) && value > 0 ? gainOf(stepOf(value)) : null;
}

/** The value drawn at full colour: the payload's percentile over the gain. */
export const fullScale = (robust, gain) => (robust > 0 && gain > 0 ? robust / gain : 0);

/** "×2", "×0.71" */
export function gainText(gain) {
  const text = gain >= 10 ? gain.toFixed(0) : gain >= 1 ? gain.toFixed(2).replace(/\.?0+$/, "") : gain.toFixed(2);
  return `×${text}`;
}
