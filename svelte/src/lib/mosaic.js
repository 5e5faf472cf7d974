// The feature popup's arithmetic, as small pure functions: which of a feature's exported mosaics
// the zoom (expand) and patches (subdiv) sliders pick, how large it is drawn, and which grid
// cell, example and observation pixels sit under a point or a keyboard cursor.

/** @typedef {import("./data.js").PopupImage} PopupImage */
/** @typedef {{row: number, col: number}} Cell */
/** @typedef {{top: number, left: number, height: number, width: number}} Box */

const clamp = (/** @type {number} */ v, /** @type {number} */ lo, /** @type {number} */ hi) =>
  Math.min(Math.max(v, lo), hi);

/** @param {number[]} values @returns {number[]} the distinct values, ascending */
export const unique = (values) => [...new Set(values)].sort((a, b) => a - b);

/** The zoom steps (expand multipliers) a feature's mosaics offer, ascending. */
export const expandsOf = (/** @type {PopupImage[]} */ popups) => unique(popups.map((p) => p.expand));

/** The density steps (subdiv multipliers) a feature's mosaics offer, ascending. */
export const subdivsOf = (/** @type {PopupImage[]} */ popups) => unique(popups.map((p) => p.subdiv));

/**
 * The mosaic at zoom `expand` and density `subdiv`; failing that, the first at that zoom, and
 * failing that, the first of all (undefined when there are none).
 * @param {PopupImage[]} popups @param {number} expand @param {number} subdiv
 * @returns {PopupImage | undefined}
 */
export function pickPopup(popups, expand, subdiv) {
  const same = popups.filter((p) => p.expand === expand);
  return same.find((p) => p.subdiv === subdiv) ?? same[0] ?? popups[0];
}

/**
 * The slider positions that show the page's default mosaic ({expand_mult, subdiv_mult}), or
 * the first one exported when the default is not among them; null when there is none.
 * @param {PopupImage[]} popups @param {{expand_mult: number, subdiv_mult: number}} wanted
 * @returns {{expandIndex: number, subdivIndex: number} | null}
 */
export function startingIndices(popups, wanted) {
  const first = popups.find((p) => p.expand === wanted.expand_mult && p.subdiv === wanted.subdiv_mult) ?? popups[0];
  if (!first) return null;
  return { expandIndex: expandsOf(popups).indexOf(first.expand), subdivIndex: subdivsOf(popups).indexOf(first.subdiv) };
}

/**
 * The mosaic's CSS size [width, height]: its longer side `longest` px, the other in proportion
 * to its cells (a missing mosaic counts as square).
 * @param {PopupImage | null | undefined} popup @param {number} longest @returns {[number, number]}
 */
export function mosaicSize(popup, longest) {
  return popup && popup.cols >= popup.rows
    ? [longest, Math.round((longest * popup.rows) / popup.cols)]
    : [Math.round((longest * (popup?.cols ?? 1)) / (popup?.rows ?? 1)), longest];
}

/** @param {PopupImage} popup @param {[number, number]} size @returns {[number, number]} a cell's [width, height] */
export const cellSize = (popup, [w, h]) => [w / popup.cols, h / popup.rows];

/**
 * The observation pixels a cell's patch was cut from, as the export recorded them.
 * @param {PopupImage} popup @param {number} row @param {number} col @returns {Box}
 */
export const patchBox = (popup, row, col) => ({
  top: popup.tops[row],
  left: popup.lefts[col],
  height: popup.patchHeight,
  width: popup.patchWidth,
});

/**
 * The observation index a cell shows, -1 for none (or no cell or mosaic).
 * @param {PopupImage | null | undefined} popup @param {Cell | null} cell
 */
export const exampleAt = (popup, cell) => (cell && popup ? popup.grid[cell.row * popup.cols + cell.col] : -1);

/**
 * The cell under the point (x, y) of an element with bounding box `rect`, or null outside it.
 * @param {PopupImage} popup @param {{left: number, top: number, width: number, height: number}} rect
 * @param {number} x @param {number} y @returns {Cell | null}
 */
export function cellAtPoint(popup, rect, x, y) {
  const col = Math.floor(((x - rect.left) / rect.width) * popup.cols);
  const row = Math.floor(((y - rect.top) / rect.height) * popup.rows);
  return row >= 0 && row < popup.rows && col >= 0 && col < popup.cols ? { row, col } : null;
}

/** @type {Record<string, [number, number]>} */
const MOVES = { ArrowUp: [-1, 0], ArrowDown: [1, 0], ArrowLeft: [0, -1], ArrowRight: [0, 1] };

/**
 * Where an arrow key moves the keyboard cursor: the first press puts it on the top-left cell,
 * later ones step within the grid. Null for any other key.
 * @param {PopupImage} popup @param {Cell | null} cursor @param {string} key @returns {Cell | null}
 */
export function moveCursor(popup, cursor, key) {
  if (!(key in MOVES)) return null;
  const [dr, dc] = MOVES[key];
  const from = cursor ?? { row: 0, col: 0 };
  return {
    row: clamp(from.row + (cursor ? dr : 0), 0, popup.rows - 1),
    col: clamp(from.col + (cursor ? dc : 0), 0, popup.cols - 1),
  };
}

/** One step of a slider's index, kept within its `count` positions. */
export const stepIndex = (/** @type {number} */ index, /** @type {number} */ step, /** @type {number} */ count) =>
  clamp(index + step, 0, count - 1);

/** The screen-reader line for the keyboard/pointer cursor. */
export function describeCell(/** @type {PopupImage} */ popup, /** @type {Cell} */ cell) {
  const index = exampleAt(popup, cell);
  return `patch at row ${cell.row + 1}, column ${cell.col + 1}: ` +
    (index >= 0 ? `observation ${index + 1}, press Enter to show it` : "no example");
}
