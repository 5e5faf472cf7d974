// Heatmaps of map methods, coloured from the decoded arrays (never from images, so their canvases
// stay readable): one frame's map through a colour table (colormaps.js), or perturbation's actor
// and critic maps together, actor in blue and critic in red.
//
// Over the observation, opacity follows |value| / full-colour value (square root, so that weak
// evidence still shows and zero is clear); without the observation every position is opaque and
// the colour alone tells the value, as the colour bar reads.

import { TABLE_SIZE } from "./colormaps.js";

/** @typedef {import("./data.js").HeatMaps} HeatMaps */
/** @typedef {import("./colormaps.js").ColorTable} ColorTable */

export const ACTOR_COLOR = [37, 99, 235];
export const CRITIC_COLOR = [220, 38, 38];

/** Opacity over the observation for a fraction 0..1 of full colour. */
export const overlayAlpha = (fraction) => Math.sqrt(Math.min(Math.max(fraction, 0), 1));

/** Signed value of position i of frame `frame` (positive - negative). */
function values(maps, frame) {
  const size = maps.height * maps.width;
  const offset = frame * size;
  const { positive, negative, positiveScale: ps, negativeScale: ns } = maps;
  const out = new Float32Array(size);
  for (let i = 0; i < size; i++) out[i] = positive[offset + i] * ps - negative[offset + i] * ns;
  return out;
}

/**
 * One frame of a method's maps as an h x w image.
 * @param {HeatMaps} maps @param {number} frame
 * @param {{scale: number, table: ColorTable, overlay: boolean}} options  scale: |value| drawn at
 *   full colour; signed tables put zero in the middle, others at the start (negatives as zero)
 * @returns {{image: ImageData, painted: number}}  painted: positions with any opacity
 */
export function heatmapImage(maps, frame, { scale, table, overlay }) {
  const v = values(maps, frame);
  const image = new ImageData(maps.width, maps.height);
  const px = image.data;
  const inverse = scale > 0 ? 1 / scale : 0;
  const top = TABLE_SIZE - 1;
  let painted = 0;
  for (let i = 0; i < v.length; i++) {
    let t = v[i] * inverse;
    t = table.signed ? Math.min(Math.max(t, -1), 1) : Math.min(Math.max(t, 0), 1);
    const index = table.signed ? Math.round(((t + 1) / 2) * top) : Math.round(t * top);
    const alpha = overlay ? Math.round(255 * overlayAlpha(Math.abs(t))) : 255;
    px[4 * i] = table.rgb[3 * index];
    px[4 * i + 1] = table.rgb[3 * index + 1];
    px[4 * i + 2] = table.rgb[3 * index + 2];
    px[4 * i + 3] = alpha;
    if (alpha > 0) painted++;
  }
  return { image, painted };
}

/**
 * The actor's and the critic's maps of one frame in one image: each a colour at opacity
 * |value| / its own full-colour value (they are in different units), mixed by strength.
 * @param {HeatMaps} actor @param {HeatMaps} critic @param {number} frame
 * @param {{actorScale: number, criticScale: number}} options
 * @returns {{image: ImageData, painted: number}}
 */
export function actorCriticImage(actor, critic, frame, { actorScale, criticScale }) {
  const a = values(actor, frame);
  const c = values(critic, frame);
  const image = new ImageData(actor.width, actor.height);
  const px = image.data;
  const [ia, ic] = [actorScale > 0 ? 1 / actorScale : 0, criticScale > 0 ? 1 / criticScale : 0];
  let painted = 0;
  for (let i = 0; i < a.length; i++) {
    const x = overlayAlpha(Math.abs(a[i]) * ia);
    const y = overlayAlpha(Math.abs(c[i]) * ic);
    if (x + y <= 0) continue;
    for (let ch = 0; ch < 3; ch++) px[4 * i + ch] = (x * ACTOR_COLOR[ch] + y * CRITIC_COLOR[ch]) / (x + y);
    px[4 * i + 3] = Math.round(255 * (1 - (1 - x) * (1 - y)));
    if (px[4 * i + 3] > 0) painted++;
  }
  return { image, painted };
}
