// Canvas drawing: one requestAnimationFrame pass draws whatever changed, attribution maps are
// coloured from the decoded arrays (never from images, so their canvases stay readable), and
// the page's timings are kept in window.__rlv_metrics for the browser tests.

/** @typedef {import("./data.js").Attribution} Attribution */

// ------------------------------------------------------------------ scheduling & metrics

export const metrics = {
  /** ms from navigation to the first attribution map drawn with data */
  firstAttributionDraw: /** @type {number | null} */ (null),
  /** attribution canvases drawn (one row's positive and negative count once each) */
  attributionDraws: 0,
  /** animation frames that drew the attribution of a new frame index */
  framesDrawn: 0,
  /** the frame index drawn last */
  lastFrame: -1,
};
if (typeof window !== "undefined") /** @type {Window & {__rlv_metrics?: typeof metrics}} */ (window).__rlv_metrics = metrics;

const jobs = new Map();
let request = 0;
let drawnThisPass = null;

/**
 * Draw on the next animation frame; a later call with the same id replaces the earlier one.
 * The canvases are taken now and handed to `draw`; the job is dropped if any of them has left
 * the page by then (a dialog closed, a row removed), since component state may already be null.
 * @param {string} id
 * @param {HTMLCanvasElement | HTMLCanvasElement[]} canvases
 * @param {(...canvases: HTMLCanvasElement[]) => void} draw
 */
export function schedule(id, canvases, draw) {
  jobs.set(id, { canvases: [canvases].flat(), draw });
  if (!request) request = requestAnimationFrame(flush);
}

/** Forget a pending job (its canvas is gone). */
export function unschedule(id) {
  jobs.delete(id);
}

function flush() {
  request = 0;
  drawnThisPass = null;
  const pending = [...jobs.values()];
  jobs.clear();
  for (const { canvases, draw } of pending) {
    if (canvases.every((canvas) => canvas?.isConnected)) draw(...canvases);
  }
  if (drawnThisPass !== null && drawnThisPass !== metrics.lastFrame) {
    metrics.framesDrawn++;
    metrics.lastFrame = drawnThisPass;
  }
}

/** Called by whoever drew attribution maps of `frame` with real data. */
export function noteAttributionDraw(frame) {
  if (metrics.firstAttributionDraw === null) metrics.firstAttributionDraw = performance.now();
  metrics.attributionDraws++;
  drawnThisPass = frame;
}

// ------------------------------------------------------------------ canvases & sprites

/** Size a canvas's backing store for its CSS size; returns the 2D context, scaled to CSS px. */
export function fitCanvas(canvas, width, height) {
  const ratio = window.devicePixelRatio || 1;
  const w = Math.max(1, Math.round(width * ratio));
  const h = Math.max(1, Math.round(height * ratio));
  if (canvas.width !== w || canvas.height !== h) {
    canvas.width = w;
    canvas.height = h;
    canvas.style.width = `${width}px`;
    canvas.style.height = `${height}px`;
  }
  const ctx = canvas.getContext("2d");
  ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
  return ctx;
}

// The observation under attribution maps: greyscale, and lighter, so that colours stand out.
const GREY = "grayscale(1) contrast(0.5) brightness(1.5)";

/** Draw one sprite (located by data.locate) from its loaded sheet, optionally greyscale and translucent. */
export function drawSprite(ctx, sheet, where, dx, dy, dw, dh, { grey = false, smooth = false, alpha = 1 } = {}) {
  ctx.save();
  ctx.imageSmoothingEnabled = smooth;
  ctx.globalAlpha = alpha;
  if (grey) ctx.filter = GREY;
  ctx.drawImage(sheet, where.x, where.y, where.width, where.height, dx, dy, dw, dh);
  ctx.restore();
}

/** #rrggbb -> [r, g, b] */
export function rgb(hex) {
  const n = parseInt(hex.slice(1), 16);
  return [(n >> 16) & 255, (n >> 8) & 255, n & 255];
}

// ------------------------------------------------------------------ attribution maps

// "Bleeding": before upsampling, each map is blurred at layer resolution with a small disc
// kernel, weights exp(-distance) over the 3 x 3 neighbourhood, normalised (a small-kernel
// stand-in for the original's 15 x 15 exp(-|x|) kernel); the upsampling to the frame is then
// bilinear. Edges renormalise over the taps inside the map.
const TAPS = [];
for (let dy = -1; dy <= 1; dy++) {
  for (let dx = -1; dx <= 1; dx++) TAPS.push([dy, dx, Math.exp(-Math.hypot(dx, dy))]);
}

function bleed(src, out, h, w) {
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      let total = 0;
      let weight = 0;
      for (let t = 0; t < TAPS.length; t++) {
        const tap = TAPS[t];
        const yy = y + tap[0];
        const xx = x + tap[1];
        if (yy < 0 || yy >= h || xx < 0 || xx >= w) continue;
        total += src[yy * w + xx] * tap[2];
        weight += tap[2];
      }
      out[y * w + x] = total / weight;
    }
  }
}

// Where features overlap, each weighs in by its intensity squared: the strongest one's colour
// shows nearly pure instead of every feature averaging into grey-brown.
const MIX_POWER = 2;

let scratch = { size: 0 };
function buffers(size) {
  if (scratch.size < size) {
    const make = () => new Float32Array(size);
    scratch = { size, src: make(), bled: make(), keep: make(), r: make(), g: make(), b: make(), sum: make() };
  }
  return scratch;
}

/**
 * Colour one frame's maps at layer resolution: feature k in colors[k] at intensity
 * value / options.scale clipped to 1 (the row's full-colour value, levels.js); overlapping
 * features mix by intensity squared (MIX_POWER), and the opacity is that of stacking them
 * (1 - prod(1 - intensity)).
 * @param {Attribution} maps
 * @param {number} frame
 * @param {"positive" | "negative" | "combined"} mode  combined: positive + negative magnitudes
 * @param {{only: number | "residual" | null, residual: boolean, colors: number[][], residualColor: number[], scale: number}} options
 * @returns {ImageData} h x w
 */
export function attributionImage(maps, frame, mode, options) {
  const { height: h, width: w, features: count } = maps;
  const size = h * w;
  const { src, bled, keep, r, g, b, sum } = buffers(size);
  keep.fill(1, 0, size);
  for (const a of [r, g, b, sum]) a.fill(0, 0, size);
  const inverse = options.scale > 0 ? 1 / options.scale : 0;

  const add = (color) => {
    bleed(src, bled, h, w);
    const [cr, cg, cb] = color;
    for (let i = 0; i < size; i++) {
      let v = bled[i] * inverse;
      if (!(v > 0)) continue;
      if (v > 1) v = 1;
      const weight = v ** MIX_POWER;
      keep[i] *= 1 - v;
      r[i] += weight * cr;
      g[i] += weight * cg;
      b[i] += weight * cb;
      sum[i] += weight;
    }
  };

  const { positive, negative, positiveScale: ps, negativeScale: ns } = maps;
  for (let k = 0; k < count; k++) {
    if (options.only !== null && options.only !== k) continue;
    const offset = (frame * count + k) * size;
    let any = false;
    for (let i = 0; i < size; i++) {
      const p = mode === "negative" ? 0 : positive[offset + i] * ps;
      const n = mode === "positive" ? 0 : negative[offset + i] * ns;
      src[i] = p + n;
      any ||= src[i] > 0;
    }
    if (any) add(options.colors[k]);
  }
  if (options.only === "residual" || (options.only === null && options.residual)) {
    const offset = frame * size;
    const { residual, residualScale: rs } = maps;
    for (let i = 0; i < size; i++) {
      const v = residual[offset + i] * rs;
      src[i] = mode === "combined" ? Math.abs(v) : mode === "positive" ? Math.max(v, 0) : Math.max(-v, 0);
    }
    add(options.residualColor);
  }

  const image = new ImageData(w, h);
  const px = image.data;
  for (let i = 0; i < size; i++) {
    if (sum[i] <= 0) continue;
    px[4 * i] = r[i] / sum[i];
    px[4 * i + 1] = g[i] / sum[i];
    px[4 * i + 2] = b[i] / sum[i];
    px[4 * i + 3] = 255 * (1 - keep[i]);
  }
  return image;
}

let staging = null;

/** Draw a layer-resolution image over the whole canvas, smoothly upsampled. */
export function paintUpsampled(ctx, image, width, height) {
  staging ??= document.createElement("canvas");
  if (staging.width !== image.width || staging.height !== image.height) {
    staging.width = image.width;
    staging.height = image.height;
  }
  staging.getContext("2d").putImageData(image, 0, 0);
  ctx.save();
  ctx.imageSmoothingEnabled = true;
  ctx.imageSmoothingQuality = "high";
  ctx.drawImage(staging, 0, 0, image.width, image.height, 0, 0, width, height);
  ctx.restore();
}

// ------------------------------------------------------------------ popup patches

// The padding of dataset-example patches that reach past the frame, as Python draws it
// (features/dataset_examples.py: squares of 4 observation pixels in two greys).
const CHECKER = 4;
const CHECKER_GREYS = ["rgb(96,96,96)", "rgb(160,160,160)"];

/**
 * Draw the patch of an observation that a popup cell shows, fully opaque: rows top..top+size
 * and columns left..left+size of the observation (outside it, the checkerboard) into the
 * rectangle (dx, dy, dw, dh).
 */
export function drawPatch(ctx, sheet, where, top, left, size, dx, dy, dw, dh) {
  const scale = dw / size;
  ctx.save();
  ctx.beginPath();
  ctx.rect(dx, dy, dw, dh);
  ctx.clip();
  const first = (v) => Math.floor(v / CHECKER) * CHECKER;
  for (let row = first(top); row < top + size; row += CHECKER) {
    for (let col = first(left); col < left + size; col += CHECKER) {
      ctx.fillStyle = CHECKER_GREYS[(row / CHECKER + col / CHECKER) & 1];
      ctx.fillRect(dx + (col - left) * scale, dy + (row - top) * scale, CHECKER * scale, CHECKER * scale);
    }
  }
  const y0 = Math.max(top, 0);
  const x0 = Math.max(left, 0);
  const y1 = Math.min(top + size, where.height);
  const x1 = Math.min(left + size, where.width);
  if (y1 > y0 && x1 > x0) {
    ctx.imageSmoothingEnabled = false;
    ctx.drawImage(sheet, where.x + x0, where.y + y0, x1 - x0, y1 - y0,
      dx + (x0 - left) * scale, dy + (y0 - top) * scale, (x1 - x0) * scale, (y1 - y0) * scale);
  }
  ctx.restore();
}
