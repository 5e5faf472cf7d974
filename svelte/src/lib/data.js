// The page's data: payloads loaded lazily through payload.js, decoded once and cached.
// Trajectories and features are small and kept; attribution, map and tree payloads (one per
// method x layer x trajectory x output, megabytes each) live in a bounded least-recently-used cache.

import { DEFAULT_KEY_PREFIX, INPUT_SITE, keys } from "./contract.js";
import { levels, percentile } from "./levels.js";
import { outputActions } from "./outputs.js";
import { decodeArray, decodeStored, forgetPayload, loadPayload } from "./payload.js";
import { decodeTree } from "./tree.js";

/** @typedef {import("./contract.js").Manifest} Manifest */
/** @typedef {import("./contract.js").Sprites} Sprites */
/** @typedef {import("./contract.js").TrajectoryPayload} TrajectoryPayload */
/** @typedef {import("./contract.js").AttributionPayload} AttributionPayload */
/** @typedef {import("./contract.js").MapPayload} MapPayload */
/** @typedef {import("./contract.js").FeaturePayload} FeaturePayload */
/** @typedef {import("./contract.js").StatesPayload} StatesPayload */

/**
 * @typedef {object} Trajectory  a decoded TrajectoryPayload
 * @property {number} index
 * @property {number} length   N
 * @property {number} actionCount  A
 * @property {Sprites} frames
 * @property {Float32Array} rewards
 * @property {Uint8Array} firsts
 * @property {Int32Array} actions
 * @property {Float32Array} values
 * @property {Float32Array} logits  N x A, row-major
 * @property {Float32Array} advantages
 */

/**
 * @typedef {object} Attribution  a decoded AttributionPayload, maps kept quantised
 * @property {string} key
 * @property {number} frames  N
 * @property {number} features  K
 * @property {number} height  h
 * @property {number} width  w
 * @property {Uint8Array} positive  N x K x h x w, value = stored * positiveScale
 * @property {number} positiveScale
 * @property {Uint8Array} negative
 * @property {number} negativeScale
 * @property {Int8Array} residual  N x h x w
 * @property {number} residualScale
 * @property {Float32Array} totals  N x K
 * @property {Float32Array} residualTotals  N
 * @property {Float32Array | null} memoryTotals  N: attribution to a recurrent agent's incoming state; null for feed-forward agents
 * @property {number} displayScale  Python's full-colour value (the layer's maximum); the page draws at `robust` instead
 * @property {number} totalsMax  largest |total| over frames, features, the residual and the memory
 * @property {number} robust  the SCALE_PERCENTILE of nonzero |value| over the payload (levels.js)
 * @property {number} bytes
 */

/**
 * @typedef {object} HeatMaps  a decoded MapPayload, maps kept quantised
 * @property {string} key
 * @property {number} frames  N
 * @property {number} height  h
 * @property {number} width  w
 * @property {Uint8Array} positive  N x h x w, value = stored * positiveScale
 * @property {number} positiveScale
 * @property {Uint8Array} negative  magnitudes of the negative part
 * @property {number} negativeScale
 * @property {Float32Array} totals  N: positive - negative summed over positions
 * @property {number} robust  the SCALE_PERCENTILE of nonzero |value| over the payload
 * @property {number} peak  the largest |value|
 * @property {boolean} hasNegative  whether any value is negative
 * @property {number} bytes
 */

/**
 * @typedef {object} PopupImage
 * @property {number} expand
 * @property {number} subdiv
 * @property {string} image  a URL
 * @property {number} rows  cells along y (Gy)
 * @property {number} cols  cells along x (Gx)
 * @property {Int32Array} grid  rows x cols observation indices, -1 for none
 * @property {Int32Array} tops  per row: the observation row its patches start at
 * @property {Int32Array} lefts  per column: the observation column its patches start at
 * @property {number} patchHeight  observation pixels a patch covers
 * @property {number} patchWidth
 */

/** @typedef {{layer: number, feature: number, thumbnail: string, popups: PopupImage[]}} Feature */

/**
 * @typedef {object} States  a decoded StatesPayload: one target's N generated states
 * @property {number} target  index into manifest.states.targets
 * @property {number} count  N
 * @property {Float32Array} energy  the target's energy of each state (lower: more what it asks for)
 * @property {Float32Array} startEnergy  the energy where its optimisation started
 * @property {Int32Array} nearestPixels  observation-set index of the frame nearest in pixels
 * @property {Float32Array} pixelError  that frame's mean squared error
 * @property {Float32Array} novelty  share of pixels differing from that frame by more than a quarter
 * @property {Int32Array} nearestEnergy  observation-set index of the frame whose energy is nearest
 * @property {Float32Array} nearestEnergyValue  that frame's energy
 */

let base = "data/";
/** @param {string} dataPath the config's dataPath, ending in "/" */
export function setDataPath(dataPath) {
  base = dataPath;
}

const FILE_REF = /^[A-Za-z0-9][A-Za-z0-9_-]*(\.[A-Za-z0-9_-]+)*\.png$/;
const DATA_REF = /^data:image\/png;base64,[A-Za-z0-9+/]+={0,2}$/;

/** The URL of an ImageRef; refuses anything but a PNG inside the data folder or a data: URL. */
export function imageUrl(ref) {
  if (typeof ref === "string" && FILE_REF.test(ref)) return base + ref;
  if (typeof ref === "string" && DATA_REF.test(ref)) return ref;
  throw new Error(`not an image reference: ${String(ref).slice(0, 60)}`);
}

/** Where image `index` of a sprite set is: {url, x, y, width, height} (Sprites.locate). */
export function locate(sprites, index) {
  const cell = index % sprites.per_sheet;
  return {
    url: imageUrl(sprites.sheets[Math.floor(index / sprites.per_sheet)]),
    x: (cell % sprites.columns) * sprites.width,
    y: Math.floor(cell / sprites.columns) * sprites.height,
    width: sprites.width,
    height: sprites.height,
  };
}

async function loadOnce(key) {
  const payload = await loadPayload(key, base);
  forgetPayload(key); // what we decode below is all we keep
  return payload;
}

function expect(payload, fields) {
  for (const [name, value] of Object.entries(fields)) {
    if (payload[name] !== value) throw new Error(`payload ${name} is ${payload[name]}, expected ${value}`);
  }
}

// ------------------------------------------------------------------ trajectories

const trajectories = new Map();

/** @param {number} t @returns {Promise<Trajectory>} */
export function getTrajectory(t) {
  if (!trajectories.has(t)) {
    const promise = loadOnce(keys.trajectory(t)).then(decodeTrajectory);
    promise.catch(() => trajectories.delete(t)); // may be tried again
    trajectories.set(t, promise);
  }
  return trajectories.get(t);
}

/** @param {TrajectoryPayload} p @returns {Promise<Trajectory>} */
async function decodeTrajectory(p) {
  expect(p, { kind: "trajectory" });
  const [rewards, firsts, actions, values, logits, advantages] = await Promise.all(
    [p.rewards, p.firsts, p.actions, p.values, p.logits, p.advantages].map(decodeArray),
  );
  return {
    index: p.trajectory,
    length: p.rewards.shape[0],
    actionCount: p.logits.shape[1],
    frames: p.frames,
    rewards,
    firsts: Uint8Array.from(firsts, (v) => (v ? 1 : 0)),
    actions: Int32Array.from(actions),
    values,
    logits,
    advantages,
  };
}

/** Softmax of the policy logits at one frame. */
export function policy(trajectory, frame) {
  const a = trajectory.actionCount;
  const row = trajectory.logits.subarray(frame * a, frame * a + a);
  const top = Math.max(...row);
  const exp = Array.from(row, (v) => Math.exp(v - top));
  const sum = exp.reduce((x, y) => x + y, 0);
  return exp.map((v) => v / sum);
}

const series = new WeakMap();

/**
 * An output's value at every frame, from the trajectory's values and logits: "value", the
 * logit of the action taken ("action"), one logit ("logit:NAME") or a group's summed logits
 * ("group:NAME"; see outputs.js), as the attribution explains them. Null for an output the
 * trajectory payload cannot reproduce as one number a frame ("actor": every logit).
 * @param {Trajectory} trajectory @param {Manifest} manifest @param {string} name
 * @returns {Float32Array | null}
 */
export function outputSeries(trajectory, manifest, name) {
  let byName = series.get(trajectory);
  if (!byName) series.set(trajectory, (byName = new Map()));
  if (!byName.has(name)) byName.set(name, computeSeries(trajectory, manifest, name));
  return byName.get(name);
}

/** @param {Trajectory} trajectory @param {Manifest} manifest @param {string} name */
function computeSeries(trajectory, manifest, name) {
  if (name === "value") return trajectory.values;
  const { length: n, actionCount: a, logits } = trajectory;
  if (name === "action") return Float32Array.from({ length: n }, (_, f) => logits[f * a + trajectory.actions[f]]);
  const indices = outputActions(manifest, name);
  if (!indices) return null;
  const out = new Float32Array(n);
  for (let f = 0; f < n; f++) for (const i of indices) out[f] += logits[f * a + i];
  return out;
}

// ------------------------------------------------------------------ attribution & maps

const payloads = new Map(); // key -> {promise, bytes}, oldest first
const CACHE_BYTES = 96 * 2 ** 20;
const CACHE_KEEP = 16; // the most recent entries are never evicted (rows and compare cells on screen)

/** Load and decode a large payload through the least-recently-used cache. */
function cached(key, decode) {
  let entry = payloads.get(key);
  if (entry) {
    payloads.delete(key); // re-insert: most recently used
    payloads.set(key, entry);
    return entry.promise;
  }
  entry = { promise: null, bytes: 0 };
  entry.promise = loadOnce(key).then(decode);
  entry.promise.then(
    (decoded) => {
      entry.bytes = decoded.bytes;
      evict();
    },
    () => payloads.get(key) === entry && payloads.delete(key),
  );
  payloads.set(key, entry);
  return entry.promise;
}

function evict() {
  let total = 0;
  for (const entry of payloads.values()) total += entry.bytes;
  let removable = payloads.size - CACHE_KEEP;
  for (const [key, entry] of payloads) {
    if (total <= CACHE_BYTES || removable <= 0) break;
    if (!entry.bytes) continue; // still loading
    payloads.delete(key);
    total -= entry.bytes;
    removable--;
  }
}

/**
 * A channel method's attribution of one output at one layer (integrated gradients: prefix "attr").
 * @param {number} layer @param {number} trajectory @param {number} output @param {string} [prefix]
 * @returns {Promise<Attribution>}
 */
export function getAttribution(layer, trajectory, output, prefix = DEFAULT_KEY_PREFIX) {
  const key = keys.attribution(prefix, layer, trajectory, output);
  return cached(key, (p) => {
    expect(p, { kind: "attribution", layer, trajectory, output });
    if ((p.key_prefix ?? DEFAULT_KEY_PREFIX) !== prefix) throw new Error(`payload ${key} has key_prefix ${p.key_prefix}`);
    return decodeAttribution(key, p);
  });
}

/**
 * A map method's heatmaps of one output; site is a layer index or -1 for the input.
 * @param {string} prefix @param {number} site @param {number} trajectory @param {number} output
 * @returns {Promise<HeatMaps>}
 */
export function getMap(prefix, site, trajectory, output) {
  const key = keys.map(prefix, site < 0 ? INPUT_SITE : site, trajectory, output);
  return cached(key, (p) => {
    expect(p, { kind: "map", site, trajectory, output, key_prefix: prefix });
    return decodeMap(key, p);
  });
}

/**
 * A tree method's attention trees of one output (tree.js).
 * @param {string} prefix @param {number} trajectory @param {number} output
 * @returns {Promise<import("./tree.js").Tree>}
 */
export function getTree(prefix, trajectory, output) {
  const key = keys.tree(prefix, trajectory, output);
  return cached(key, (p) => {
    expect(p, { kind: "tree", trajectory, output, key_prefix: prefix });
    return decodeTree(key, p);
  });
}

/** @param {string} key @param {AttributionPayload} p @returns {Promise<Attribution>} */
async function decodeAttribution(key, p) {
  const [n, k, h, w] = p.positive.shape;
  const [positive, negative, residual] = await Promise.all(
    [p.positive, p.negative, p.residual].map(decodeStored),
  );
  const totals = await decodeArray(p.totals);
  const residualTotals = await decodeArray(p.residual_totals);
  const memoryTotals = p.memory_totals ? await decodeArray(p.memory_totals) : null;
  if (memoryTotals && memoryTotals.length !== n) throw new Error(`payload ${key} has ${memoryTotals.length} memory totals for ${n} frames`);
  let totalsMax = 0;
  for (const v of totals) totalsMax = Math.max(totalsMax, Math.abs(v));
  for (const v of residualTotals) totalsMax = Math.max(totalsMax, Math.abs(v));
  for (const v of memoryTotals ?? []) totalsMax = Math.max(totalsMax, Math.abs(v));
  const robust = percentile([levels(bytes(positive), positive.scale), levels(bytes(negative), negative.scale)]);
  return {
    key,
    frames: n,
    features: k,
    height: h,
    width: w,
    positive: bytes(positive),
    positiveScale: positive.scale,
    negative: bytes(negative),
    negativeScale: negative.scale,
    residual: /** @type {Int8Array} */ (residual.stored),
    residualScale: residual.scale,
    totals,
    residualTotals,
    memoryTotals,
    displayScale: p.display_scale,
    totalsMax,
    robust,
    bytes: positive.stored.byteLength * 2 + residual.stored.byteLength + totals.byteLength * 2 + (memoryTotals?.byteLength ?? 0),
  };
}

/** @param {string} key @param {MapPayload} p @returns {Promise<HeatMaps>} */
async function decodeMap(key, p) {
  const [n, h, w] = p.positive.shape;
  const [positive, negative] = await Promise.all([p.positive, p.negative].map(decodeStored));
  const totals = await decodeArray(p.totals);
  const parts = [levels(bytes(positive), positive.scale), levels(bytes(negative), negative.scale)];
  return {
    key,
    frames: n,
    height: h,
    width: w,
    positive: bytes(positive),
    positiveScale: positive.scale,
    negative: bytes(negative),
    negativeScale: negative.scale,
    totals,
    robust: percentile(parts),
    peak: Math.max(255 * positive.scale, 255 * negative.scale),
    hasNegative: parts[1].counts[0] < negative.stored.length && negative.scale > 0,
    bytes: positive.stored.byteLength * 2 + totals.byteLength,
  };
}

/** A uint8 array's stored bytes. @param {{stored: ArrayLike<number>}} decoded */
function bytes(decoded) {
  if (!(decoded.stored instanceof Uint8Array)) throw new Error("expected a uint8 map");
  return decoded.stored;
}

// ------------------------------------------------------------------ features

/** An int32 array field (stored exactly, scale 1). */
async function integers(encoded) {
  if (encoded.dtype !== "int32") throw new Error(`expected int32, got ${encoded.dtype}`);
  return (await decodeStored(encoded)).stored;
}

const features = new Map();

/** @returns {Promise<Feature>} */
export function getFeature(layer, feature) {
  const key = keys.feature(layer, feature);
  if (!features.has(key)) {
    const promise = loadOnce(key).then(async (p) => {
      expect(p, { kind: "feature", layer, feature });
      const popups = await Promise.all(
        p.popups.map(async (popup) => ({
          expand: popup.expand_mult,
          subdiv: popup.subdiv_mult,
          image: imageUrl(popup.image),
          rows: popup.grid.shape[0],
          cols: popup.grid.shape[1],
          grid: await integers(popup.grid),
          tops: await integers(popup.tops),
          lefts: await integers(popup.lefts),
          patchHeight: popup.patch_height,
          patchWidth: popup.patch_width,
        })),
      );
      return { layer, feature, thumbnail: imageUrl(p.thumbnail), popups };
    });
    promise.catch(() => features.delete(key));
    features.set(key, promise);
  }
  return features.get(key);
}

// ------------------------------------------------------------------ states of interest

const statesPayloads = new Map();

/**
 * The states of interest of one target (manifest.states.targets[target]), beyond their trajectory.
 * @param {number} target @returns {Promise<States>}
 */
export function getStates(target) {
  if (!statesPayloads.has(target)) {
    const promise = loadOnce(keys.states(target)).then(async (/** @type {StatesPayload} */ p) => {
      expect(p, { kind: "states", target });
      const [energy, startEnergy, pixelError, novelty, nearestEnergyValue] = await Promise.all(
        [p.energy, p.start_energy, p.pixel_error, p.novelty, p.nearest_energy_value].map(decodeArray),
      );
      const [nearestPixels, nearestEnergy] = /** @type {Int32Array[]} */ (
        await Promise.all([p.nearest_pixels, p.nearest_energy].map(integers))
      );
      const count = energy.length;
      const arrays = [startEnergy, pixelError, novelty, nearestEnergyValue, nearestPixels, nearestEnergy];
      if (arrays.some((a) => a.length !== count)) throw new Error(`payload ${keys.states(target)} has arrays of different lengths`);
      return { target, count, energy, startEnergy, nearestPixels, pixelError, novelty, nearestEnergy, nearestEnergyValue };
    });
    promise.catch(() => statesPayloads.delete(target)); // may be tried again
    statesPayloads.set(target, promise);
  }
  return statesPayloads.get(target);
}
