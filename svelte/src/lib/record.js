// Recording the current trajectory as a video, entirely in the page (RecordButton.svelte): the
// page is stepped through every frame, and once a frame's canvases are drawn, what they show is
// composited onto one offscreen canvas (the observation, then every attribution view of the rows
// and of the compare view, side by side in the page's order, each labelled, over a caption strip
// of the frame's number, action, value and reward) and encoded. WebCodecs' VideoEncoder (VP8, or
// VP9) stamps frame i at i / fps exactly, and webm.js writes the file; browsers without it fall
// back to MediaRecorder on canvas.captureStream(0), one requestFrame() per frame, paced at the fps
// (there the timing is the wall clock's, so it is only as even as the pacing).
//
// Attribution maps are drawn from numbers, so their canvases can be read; the canvases that show
// the observation (the frame's picture, the greyed observation under a map) cannot when the page
// came from file:// (the browser treats its sprite sheets as another origin's, and refuses a video
// made from them), so the composite draws the observations itself, as the page does, from copies
// of the sheets it may read (`Observation`: RecordButton.svelte).

import { drawSprite } from "./draw.js";
import { webm } from "./webm.js";

/** What the composite shows, in document (on-screen) order. */
const TILES = ".frame-info canvas, article.row .stack, section.compare .stack";
const PAD = 6; // px around the composite and between tiles
const LABEL = 28; // px under each tile for its label's two lines
const CAPTION = 22; // px of the caption strip at the bottom
const MAX_WIDTH = 1920; // tiles wrap onto another line past this
// Waits are counted in animation frames, which stop while the page is hidden, so that a
// recording in a background tab pauses instead of failing.
const DRAW_FRAMES = 900; // a frame's canvases are drawn within 15 s of animation (at 60 Hz)
const LOAD_FRAMES = 3600; // the maps load within a minute
const KEY_SECONDS = 2; // a key frame (and a WebM cluster) every 2 s of video

/**
 * @typedef {object} Tile  one element of the page, drawn into the composite
 * @property {HTMLElement} element
 * @property {{canvas: HTMLCanvasElement, kind: "frame" | "underlay" | "map"}[]} canvases  drawn in order over the whole
 *   tile: the frame's picture (the frame info's canvas), the observation under a map (a stack's first canvas), a map
 * @property {number} x
 * @property {number} y
 * @property {number} width
 * @property {number} height
 * @property {[string, string]} label  what the tile explains (its row or compare cell), and its caption
 * @property {string} background  the element's CSS background, under its canvases
 */

/** @typedef {{width: number, height: number, tiles: Tile[]}} Layout  the composite, in CSS px */

/**
 * @typedef {object} Sprite  an observation, drawn as the page draws it
 * @property {CanvasImageSource} sheet  a readable copy of the sprite sheet
 * @property {{x: number, y: number, width: number, height: number}} where  the sprite in it (data.locate)
 * @property {boolean} grey  as under an attribution overlay
 * @property {number} alpha
 */

/**
 * @typedef {(kind: "frame" | "underlay", element: HTMLElement, frame: number) => Sprite | null} Observation
 *   what an observation canvas of a tile shows at a frame (null: nothing, as under a map without the overlay)
 */

/** @typedef {{add: (index: number) => Promise<void>, finish: (count: number) => Promise<Blob>, close: () => void}} Encoder */

const hasWebCodecs = () => typeof VideoEncoder === "function" && typeof VideoFrame === "function";
const hasRecorder = () =>
  typeof MediaRecorder === "function" && typeof HTMLCanvasElement === "function" && "captureStream" in HTMLCanvasElement.prototype;

/** How this browser can record: "webcodecs", "mediarecorder", or "" (it cannot). */
export function support() {
  return hasWebCodecs() ? "webcodecs" : hasRecorder() ? "mediarecorder" : "";
}

export const UNSUPPORTED =
  "This browser cannot record video here: it has neither WebCodecs' VideoEncoder nor MediaRecorder with canvas.captureStream";

/** `<agent>-trajectory-<t>.webm`, t counted from 1, the agent's name reduced to safe characters. */
export function fileName(agent, trajectory, type = "video/webm") {
  const safe = String(agent)
    .normalize("NFKD")
    .replace(/[\u0300-\u036f]/g, "")
    .replace(/[^A-Za-z0-9._-]+/g, "-")
    .replace(/^[-.]+|[-.]+$/g, "")
    .slice(0, 80);
  return `${safe || "agent"}-trajectory-${trajectory + 1}.${type.includes("mp4") ? "mp4" : "webm"}`;
}

// ------------------------------------------------------------------ readable sprite sheets

/** A sprite sheet's file name. @param {string} url */
export const sheetName = (url) => url.slice(url.lastIndexOf("/") + 1);

/** Whether a sheet can be read only from a file the user chooses (the page came from file://). @param {string} url */
export function needsFile(url) {
  return new URL(url, location.href).protocol === "file:";
}

/**
 * Readable copies of sprite sheets: fetched (a served page, data: URLs), or decoded from the
 * files the user chose (by name).
 * @param {string[]} urls @param {Map<string, File>} files
 * @returns {Promise<Map<string, ImageBitmap>>}
 */
export async function readableSheets(urls, files) {
  const load = async (url) => {
    const local = needsFile(url);
    const blob = local ? files.get(sheetName(url)) : await fetch(url).then((r) => (r.ok ? r.blob() : undefined));
    if (!blob) throw new Error(local ? `no ${sheetName(url)} among the chosen files: choose the data folder beside the page` : `could not load ${url}`);
    return /** @type {[string, ImageBitmap]} */ ([url, await createImageBitmap(blob)]);
  };
  return new Map(await Promise.all(urls.map(load)));
}

// ------------------------------------------------------------------ the page while recording

/**
 * Make everything on the page inert (and dimmed) but `keep` and its ancestors; returns the undo.
 * @param {HTMLElement} keep
 */
export function isolate(keep) {
  /** @type {HTMLElement[]} */
  const changed = [];
  for (let node = keep; node.parentElement && node !== document.body; node = node.parentElement) {
    for (const sibling of node.parentElement.children) {
      if (sibling === node || !(sibling instanceof HTMLElement) || sibling.inert) continue;
      sibling.inert = true;
      sibling.dataset.recordDimmed = "";
      changed.push(sibling);
    }
  }
  return () => {
    for (const element of changed) {
      element.inert = false;
      delete element.dataset.recordDimmed;
    }
  };
}

const nextFrame = () => new Promise((resolve) => requestAnimationFrame(resolve));
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, Math.max(0, ms)));

/** An error that means the user cancelled. */
function cancelled() {
  return new DOMException("the recording was cancelled", "AbortError");
}

// ------------------------------------------------------------------ the composite

/** The label of a tile: its row (or compare cell), and its figure's caption. @param {HTMLElement} element */
function tileLabel(element) {
  if (element.closest(".frame-info")) return /** @type {[string, string]} */ (["observation", ""]);
  const caption = element.closest("figure")?.querySelector("figcaption")?.textContent?.trim() ?? "";
  // a row's accessible name is "<method> attribution of <output>": shortened to fit under a tile
  const row = element.closest("[data-row-id]")?.getAttribute("aria-label")?.replace(" attribution of ", ": ");
  const cell = element.closest("li[data-method]")?.querySelector("h3 button")?.textContent?.trim();
  return /** @type {[string, string]} */ ([row ?? (cell ? `compare: ${cell}` : ""), caption]);
}

/** Where each shown tile goes: left to right, wrapping past MAX_WIDTH; the size even (as encoders want). */
export function layout(root = document) {
  /** @type {Tile[]} */
  const tiles = [];
  let [x, y, line, width] = [PAD, PAD, 0, 0];
  for (const element of /** @type {NodeListOf<HTMLElement>} */ (root.querySelectorAll(TILES))) {
    const [w, h] = [element.offsetWidth, element.offsetHeight];
    if (!w || !h) continue;
    if (x > PAD && x + w + PAD > MAX_WIDTH) [x, y, line] = [PAD, y + line + LABEL + PAD, 0];
    const found = /** @type {HTMLCanvasElement[]} */ (element instanceof HTMLCanvasElement ? [element] : [...element.querySelectorAll(":scope > canvas")]);
    const kind = (canvas, i) => (canvas === element ? "frame" : i === 0 && found.length > 1 ? "underlay" : "map");
    const canvases = found.map((canvas, i) => ({ canvas, kind: /** @type {"frame" | "underlay" | "map"} */ (kind(canvas, i)) }));
    const background = getComputedStyle(element).backgroundColor;
    tiles.push({ element, canvases, x, y, width: w, height: h, label: tileLabel(element), background });
    x += w + PAD;
    line = Math.max(line, h);
    width = Math.max(width, x);
  }
  const even = (v) => 2 * Math.ceil(v / 2);
  return { width: even(Math.max(width, 320)), height: even(y + line + LABEL + CAPTION), tiles };
}

/** `text`, shortened with an ellipsis to fit `width`. @param {CanvasRenderingContext2D} ctx */
function fit(ctx, text, width) {
  if (ctx.measureText(text).width <= width) return text;
  let end = text.length;
  while (end > 0 && ctx.measureText(`${text.slice(0, end)}…`).width > width) end--;
  return end ? `${text.slice(0, end)}…` : "";
}

const TRANSPARENT = new Set(["transparent", "rgba(0, 0, 0, 0)"]);
const FONT = "system-ui, sans-serif";

/**
 * Draw the page's current canvases into the composite, with the caption strip.
 * @param {HTMLCanvasElement} canvas  sized to the layout
 * @param {Layout} sheet
 * @param {[string, string]} caption  the strip's left and right texts
 * @param {number} frame
 * @param {Observation} observation
 */
export function drawComposite(canvas, sheet, [left, right], frame, observation) {
  const ctx = /** @type {CanvasRenderingContext2D} */ (canvas.getContext("2d", { alpha: false }));
  const { width, height } = sheet;
  ctx.fillStyle = "#fff";
  ctx.fillRect(0, 0, width, height);
  ctx.textBaseline = "top";
  for (const tile of sheet.tiles) {
    if (!TRANSPARENT.has(tile.background)) {
      ctx.fillStyle = tile.background;
      ctx.fillRect(tile.x, tile.y, tile.width, tile.height);
    }
    for (const { canvas: source, kind } of tile.canvases) {
      if (kind !== "map") {
        const sprite = observation(kind, tile.element, frame);
        if (sprite) drawSprite(ctx, sprite.sheet, sprite.where, tile.x, tile.y, tile.width, tile.height, sprite);
      } else if (source.width && source.height) {
        ctx.imageSmoothingEnabled = getComputedStyle(source).imageRendering !== "pixelated";
        ctx.drawImage(source, 0, 0, source.width, source.height, tile.x, tile.y, tile.width, tile.height);
      }
    }
    ctx.font = `11px ${FONT}`;
    tile.label.forEach((text, line) => {
      ctx.fillStyle = line ? "#666" : "#222";
      ctx.fillText(fit(ctx, text, tile.width), tile.x, tile.y + tile.height + 3 + 12 * line);
    });
  }
  const top = height - CAPTION;
  ctx.fillStyle = "#222";
  ctx.fillRect(0, top, width, CAPTION);
  ctx.fillStyle = "#fff";
  ctx.font = `12px ${FONT}`;
  ctx.textBaseline = "middle";
  const shown = fit(ctx, left, width - 2 * PAD);
  ctx.fillText(shown, PAD, top + CAPTION / 2);
  const room = width - 3 * PAD - ctx.measureText(shown).width;
  const rest = fit(ctx, right, room - 2 * PAD);
  if (rest) {
    ctx.fillStyle = "#bbb";
    ctx.fillText(rest, width - PAD - ctx.measureText(rest).width, top + CAPTION / 2);
  }
}

// ------------------------------------------------------------------ waiting for the page

/** Whether a tile's maps are still loading (ChannelView and MapView say "loading…"). @param {Tile} tile */
function loading(tile) {
  const owner = tile.element.closest("[data-row-id], li[data-method]");
  return [...(owner?.querySelectorAll(".status") ?? [])].some((p) => p.textContent?.startsWith("loading"));
}

/**
 * Resolves after the animation frame that drew `frame`: draw.js's flush was requested by the
 * effects that ran before this is called, so it runs before our requestAnimationFrame callback;
 * maps that stamp their canvases (data-frame) are checked to show `frame`, in case they drew later.
 * @param {number} frame @param {Tile[]} tiles @param {AbortSignal} signal
 */
async function drawn(frame, tiles, signal) {
  for (let waited = 1; ; waited++) {
    await nextFrame();
    if (signal.aborted) throw cancelled();
    const stamps = tiles.map((tile) => tile.canvases.at(-1)?.canvas.dataset.frame).filter((s) => s !== undefined);
    if (stamps.every((s) => s === String(frame))) return;
    if (waited >= DRAW_FRAMES) throw new Error(`frame ${frame + 1} was not drawn`);
  }
}

/** Resolves once no tile's maps are loading. @param {Tile[]} tiles @param {AbortSignal} signal */
async function loaded(tiles, signal) {
  for (let waited = 0; tiles.some(loading); waited++) {
    if (waited >= LOAD_FRAMES) throw new Error("the attribution maps did not load");
    await nextFrame();
    if (signal.aborted) throw cancelled();
  }
}

// ------------------------------------------------------------------ encoders

/** Bits per second for a clear picture of small text and sharp maps. */
function bitrate(width, height, fps) {
  return Math.round(Math.min(Math.max(width * height * fps * 0.6, 1e6), 2e7));
}

const CODECS = [
  ["vp8", "V_VP8"],
  ["vp09.00.10.08", "V_VP9"],
];

/**
 * VideoEncoder, frame i stamped at i / fps; null if it encodes neither VP8 nor VP9 at this size.
 * @param {HTMLCanvasElement} canvas @param {number} fps @returns {Promise<Encoder | null>}
 */
async function webCodecs(canvas, fps) {
  const { width, height } = canvas;
  let chosen = null;
  for (const [codec, id] of CODECS) {
    const config = { codec, width, height, bitrate: bitrate(width, height, fps), framerate: fps };
    const answer = await VideoEncoder.isConfigSupported(config).catch(() => null);
    if (answer?.supported) {
      chosen = { config, id: /** @type {"V_VP8" | "V_VP9"} */ (id) };
      break;
    }
  }
  if (!chosen) return null;
  /** @type {import("./webm.js").Block[]} */
  const blocks = [];
  /** @type {unknown} */
  let failure = null;
  const encoder = new VideoEncoder({
    output: (chunk) => {
      const data = new Uint8Array(chunk.byteLength);
      chunk.copyTo(data);
      blocks.push({ data, timestamp: Math.round(chunk.timestamp / 1000), key: chunk.type === "key" });
    },
    error: (error) => (failure = error),
  });
  encoder.configure(chosen.config);
  const period = 1e6 / fps; // µs
  const keyEvery = Math.max(1, Math.round(fps * KEY_SECONDS));
  const { id } = chosen;
  return {
    async add(index) {
      if (failure) throw failure;
      const frame = new VideoFrame(canvas, { timestamp: Math.round(index * period), duration: Math.round(period) });
      encoder.encode(frame, { keyFrame: index % keyEvery === 0 });
      frame.close();
      while (encoder.encodeQueueSize > 2 && !failure) await sleep(4);
    },
    async finish(count) {
      await encoder.flush();
      if (failure) throw failure;
      const duration = (count * 1000) / fps;
      return new Blob(webm({ codec: id, width, height, duration, blocks }), { type: "video/webm" });
    },
    close() {
      if (encoder.state !== "closed") encoder.close();
    },
  };
}

/**
 * MediaRecorder on canvas.captureStream(0): one requestFrame() per frame, each held for 1 / fps
 * of wall-clock time (MediaRecorder stamps frames when they arrive).
 * @param {HTMLCanvasElement} canvas @param {number} fps @returns {Encoder}
 */
function mediaRecorder(canvas, fps) {
  const stream = canvas.captureStream(0);
  const track = /** @type {CanvasCaptureMediaStreamTrack} */ (stream.getVideoTracks()[0]);
  const types = ["video/webm;codecs=vp9", "video/webm;codecs=vp8", "video/webm", "video/mp4"];
  const mimeType = types.find((t) => MediaRecorder.isTypeSupported(t)) ?? "";
  const recorder = new MediaRecorder(stream, { mimeType, videoBitsPerSecond: bitrate(canvas.width, canvas.height, fps) });
  /** @type {Blob[]} */
  const parts = [];
  recorder.ondataavailable = (event) => event.data.size && parts.push(event.data);
  recorder.start();
  const period = 1000 / fps;
  let next = 0;
  return {
    async add() {
      await sleep(next - performance.now()); // the previous frame's time on screen
      track.requestFrame();
      next = performance.now() + period;
    },
    async finish() {
      await sleep(next - performance.now());
      const stopped = new Promise((resolve) => recorder.addEventListener("stop", resolve, { once: true }));
      recorder.stop();
      await stopped;
      return new Blob(parts, { type: recorder.mimeType || "video/webm" });
    },
    close() {
      if (recorder.state !== "inactive") recorder.stop();
      track.stop();
    },
  };
}

// ------------------------------------------------------------------ recording

/**
 * Record frames 0..count-1 as the page shows them.
 * @param {object} options
 * @param {number} options.count  frames in the trajectory
 * @param {number} options.fps  the video's frame rate (the page's playback speed)
 * @param {(frame: number) => Promise<void>} options.show  make the page show a frame; resolves once its effects ran
 * @param {(frame: number) => [string, string]} options.caption  the caption strip's texts
 * @param {(done: number) => void} options.progress  called after each frame encoded
 * @param {Observation} options.observation  for the canvases the page may not read
 * @param {AbortSignal} options.signal  cancels; the promise then rejects with an AbortError
 * @returns {Promise<{blob: Blob, layout: Layout}>}
 */
export async function record({ count, fps, show, caption, progress, observation, signal }) {
  const sheet = layout();
  if (!sheet.tiles.length) throw new Error("nothing on the page to record");
  const canvas = document.createElement("canvas");
  canvas.width = sheet.width;
  canvas.height = sheet.height;
  drawComposite(canvas, sheet, ["", ""], 0, () => null);
  const encoder = (hasWebCodecs() && (await webCodecs(canvas, fps))) || (hasRecorder() ? mediaRecorder(canvas, fps) : null);
  if (!encoder) throw new Error(UNSUPPORTED);
  try {
    await loaded(sheet.tiles, signal);
    for (let frame = 0; frame < count; frame++) {
      if (signal.aborted) throw cancelled();
      await show(frame);
      await drawn(frame, sheet.tiles, signal);
      drawComposite(canvas, sheet, caption(frame), frame, observation);
      await encoder.add(frame);
      progress(frame + 1);
    }
    if (signal.aborted) throw cancelled();
    return { blob: await encoder.finish(count), layout: sheet };
  } finally {
    encoder.close();
  }
}
