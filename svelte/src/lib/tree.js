// An attention agent's attention tree (TreePayload) as the page draws it over the frame: the
// payload decoded once, then per frame the valid nodes down to a depth, each at the centre of
// its receptive field, with its edge's strength normalised within the frame's tree, and the node
// under the pointer.

import { decodeArray, decodeStored } from "./payload.js";

/** @typedef {import("./contract.js").Manifest} Manifest */
/** @typedef {import("./contract.js").TreePayload} TreePayload */

/**
 * @typedef {object} Tree  a decoded TreePayload
 * @property {string} key
 * @property {number} frames  N
 * @property {number} size  T, nodes a frame (padding included)
 * @property {string[]} levels  the layer of each level, the attention layer first
 * @property {Int32Array} parent  N x T, -1 for a root
 * @property {Uint8Array} level  N x T
 * @property {Int32Array} y  N x T
 * @property {Int32Array} x  N x T
 * @property {Float32Array} contribution  N x T
 * @property {Uint8Array} valid  N x T, 1 or 0
 * @property {Float32Array} boxes  N x T x 4: top, left, bottom, right as fractions of the frame
 * @property {number} bytes
 */

/**
 * One node of a frame's tree, as drawn.
 * @typedef {object} TreeNode
 * @property {number} index  its place in the frame's tree (breadth-first)
 * @property {number} parent  the parent's index, -1 for a root
 * @property {number} level  index into Tree.levels
 * @property {number} y  cell row in its level's map
 * @property {number} x  cell column
 * @property {number} contribution  a root's attention weight, else its contribution to its parent
 * @property {number} strength  |contribution| / the largest at its level in this frame's tree, 0..1
 * @property {[number, number, number, number]} box  receptive field: top, left, bottom, right, fractions
 * @property {number} cy  the box's centre, a fraction of the frame's height
 * @property {number} cx  the box's centre, a fraction of the frame's width
 */

/** Integers of any stored integer dtype, as int32. */
async function integers(encoded) {
  return Int32Array.from((await decodeStored(encoded)).stored);
}

/** @param {string} key @param {TreePayload} p @returns {Promise<Tree>} */
export async function decodeTree(key, p) {
  const [n, t] = p.parent.shape;
  const [parent, level, y, x, valid] = await Promise.all([p.parent, p.level, p.y, p.x, p.valid].map(integers));
  const [contribution, boxes] = await Promise.all([p.contribution, p.boxes].map(decodeArray));
  for (const [name, array, per] of /** @type {[string, ArrayLike<number>, number][]} */ ([
    ["level", level, 1], ["y", y, 1], ["x", x, 1], ["contribution", contribution, 1], ["valid", valid, 1], ["boxes", boxes, 4],
  ])) {
    if (array.length !== n * t * per) throw new Error(`payload ${key}: ${name} has ${array.length} values, ${n}×${t} nodes need ${n * t * per}`);
  }
  if (!Array.isArray(p.levels) || !p.levels.length) throw new Error(`payload ${key} names no levels`);
  for (let i = 0; i < n * t; i++) {
    if (!valid[i]) continue;
    if (level[i] >= p.levels.length) throw new Error(`payload ${key}: a node's level ${level[i]} is past the ${p.levels.length} levels`);
    if (parent[i] < -1 || parent[i] >= t) throw new Error(`payload ${key}: a node's parent ${parent[i]} is past the ${t} nodes`);
  }
  return {
    key,
    frames: n,
    size: t,
    levels: [...p.levels],
    parent,
    level: Uint8Array.from(level),
    y,
    x,
    contribution,
    valid: Uint8Array.from(valid, (v) => (v ? 1 : 0)),
    boxes,
    bytes: n * t * (4 * 4 + 1 + 4 + 1 + 16),
  };
}

/**
 * The valid nodes of one frame's tree down to level `depth` (0: the roots), roots first. A node
 * whose parent is not shown (padding, or past the depth) is left out, so that every edge has two
 * ends. Strengths are normalised per level over the whole frame's tree, whatever the depth: the
 * roots' attention weights and the contributions one level down are in different units.
 * @param {Tree} tree @param {number} frame @param {number} depth @returns {TreeNode[]}
 */
export function frameNodes(tree, frame, depth) {
  const t = tree.size;
  const base = frame * t;
  const largest = new Array(tree.levels.length).fill(0);
  for (let i = 0; i < t; i++) {
    if (tree.valid[base + i]) largest[tree.level[base + i]] = Math.max(largest[tree.level[base + i]], Math.abs(tree.contribution[base + i]));
  }
  /** @type {Map<number, TreeNode>} */
  const shown = new Map();
  // Breadth-first, so a parent comes before its children; loop until nothing is added in case a
  // payload lists them otherwise.
  for (let added = true; added; ) {
    added = false;
    for (let i = 0; i < t; i++) {
      const at = base + i;
      if (shown.has(i) || !tree.valid[at] || tree.level[at] > depth) continue;
      const parent = tree.parent[at];
      if (parent >= 0 && (parent === i || !shown.has(parent))) continue;
      const box = /** @type {[number, number, number, number]} */ (Array.from(tree.boxes.subarray(4 * at, 4 * at + 4)));
      const c = tree.contribution[at];
      const top = largest[tree.level[at]];
      shown.set(i, {
        index: i,
        parent,
        level: tree.level[at],
        y: tree.y[at],
        x: tree.x[at],
        contribution: c,
        strength: top > 0 ? Math.abs(c) / top : 0,
        box,
        cy: (box[0] + box[2]) / 2,
        cx: (box[1] + box[3]) / 2,
      });
      added = true;
    }
  }
  return [...shown.values()].sort((a, b) => a.level - b.level || a.index - b.index);
}

/** Colours of the levels: the attention's roots, then each layer below (cycled past the last). */
export const LEVEL_COLORS = ["#e8590c", "#f5c518", "#2fb344", "#1c7ed6", "#ae3ec9"];
export const levelColor = (/** @type {number} */ level) => LEVEL_COLORS[level % LEVEL_COLORS.length];

/** A node's radius in CSS pixels: roots largest, then smaller with each level. */
export const nodeRadius = (/** @type {number} */ level) => (level === 0 ? 6.5 : Math.max(2.5, 5 - level * 0.6));

/** An edge's width in CSS pixels, from 1 (none) to 6 (the strongest at its level, at gain 1; a
 * higher gain widens the weaker edges up to 6). */
export const edgeWidth = (/** @type {number} */ strength, gain = 1) => 1 + 5 * Math.min(Math.max(strength * gain, 0), 1);

/**
 * The node under a point (CSS pixels over a view of width x height): the nearest whose centre
 * is within its radius plus `slack`; between equally near ones the shallower, which is drawn on
 * top. Null if none.
 * @param {TreeNode[]} nodes @param {number} px @param {number} py @param {number} width @param {number} height
 */
export function nodeAt(nodes, px, py, width, height, slack = 3) {
  let best = null;
  let distance = Infinity;
  for (const node of nodes) {
    const d = Math.hypot(node.cx * width - px, node.cy * height - py);
    if (d <= nodeRadius(node.level) + slack && (d < distance || (d === distance && best && node.level < best.level))) {
      best = node;
      distance = d;
    }
  }
  return best;
}

/** The name a level is shown by: its module name and, for an attributed layer, its label ("relu2, layer 2a"). */
export function levelName(/** @type {Manifest} */ manifest, /** @type {string} */ name) {
  const layer = manifest.layers.find((l) => l.name === name);
  return layer ? `${name}, layer ${layer.label}` : name;
}

/**
 * Draw one frame's tree: edges from each node to its parent (its level's colour, width by
 * strength, dashed when the contribution is negative, over a white halo), then the nodes, the
 * deepest first so that the roots lie on top; roots ringed in white and black; the highlighted
 * node ringed in black.
 * @param {CanvasRenderingContext2D} ctx @param {TreeNode[]} nodes @param {number} width @param {number} height
 * @param {TreeNode | null} highlight @param {number} gain  edge widths (edgeWidth)
 */
export function drawTree(ctx, nodes, width, height, highlight = null, gain = 1) {
  const byIndex = new Map(nodes.map((n) => [n.index, n]));
  const at = (/** @type {TreeNode} */ n) => /** @type {[number, number]} */ ([n.cx * width, n.cy * height]);
  ctx.save();
  ctx.lineCap = "round";
  const deepestFirst = [...nodes].sort((a, b) => b.level - a.level);
  for (const halo of [true, false]) {
    for (const node of deepestFirst) {
      const parent = byIndex.get(node.parent);
      if (!parent) continue;
      const lineWidth = edgeWidth(node.strength, gain);
      ctx.setLineDash(node.contribution < 0 ? [4, 3] : []);
      ctx.strokeStyle = halo ? "rgba(255, 255, 255, 0.85)" : levelColor(node.level);
      ctx.lineWidth = halo ? lineWidth + 2 : lineWidth;
      ctx.beginPath();
      ctx.moveTo(...at(node));
      ctx.lineTo(...at(parent));
      ctx.stroke();
    }
  }
  ctx.setLineDash([]);
  for (const node of deepestFirst) {
    const [x, y] = at(node);
    const r = nodeRadius(node.level);
    ctx.beginPath();
    ctx.arc(x, y, r, 0, 2 * Math.PI);
    ctx.fillStyle = levelColor(node.level);
    ctx.fill();
    ctx.lineWidth = node.level === 0 ? 2 : 1;
    ctx.strokeStyle = "#fff";
    ctx.stroke();
    if (node.level === 0 || node === highlight) {
      ctx.beginPath();
      ctx.arc(x, y, r + (node.level === 0 ? 2 : 1.5), 0, 2 * Math.PI);
      ctx.lineWidth = node === highlight ? 2.5 : 1.5;
      ctx.strokeStyle = "#111";
      ctx.stroke();
    }
  }
  ctx.restore();
}
