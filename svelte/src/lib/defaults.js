// Every default the page starts from, in one place. The manifest and the page's config (both
// written by Python: config.InterfaceConfig.page_defaults) are the sources; a value that is
// missing or invalid is an error, not a guess. The exceptions are PAGE_DEFAULTS, settings newer
// than Python's config: used when the config leaves them out, checked when it has them.

import { validGain } from "./levels.js";

/** @typedef {import("./contract.js").Manifest} Manifest */

/**
 * @typedef {object} Defaults
 * @property {number} trajectory  index into manifest.trajectory_lengths
 * @property {number} layer       index into manifest.layers
 * @property {number} fps         playback speed
 * @property {number[]} outputs   one attribution row per entry: indices into manifest.outputs
 * @property {boolean} overlay    draw attribution over the (greyscale) observation
 * @property {boolean} combine    one image of positive + negative magnitude instead of two
 * @property {boolean} residual   draw the residual (everything the features do not explain)
 * @property {{expand_mult: number, subdiv_mult: number}} popup  zoom and density a popup opens at
 * @property {number} scrubberFrames  frames visible in the scrubber and the line graphs
 * @property {string} residualColor   #rrggbb of the residual in maps, bars and the legend
 * @property {string} memoryColor     #rrggbb of a recurrent agent's memory (its incoming state) in the feature totals
 * @property {number} gain       a row's gain: full colour at the payload's SCALE_PERCENTILE / gain
 * @property {number} observationOpacity  opacity of the observation under a row's overlay, 0..1
 */

/** The settings Python's config does not write yet (config.defaults may set them). memoryColor:
 * a neutral slate, apart from the residual's grey and the features' hues. */
export const PAGE_DEFAULTS = { gain: 1, observationOpacity: 0.75, memoryColor: "#4f6d8a" };

const HEX = /^#[0-9a-fA-F]{6}$/;

/**
 * @param {{defaults?: Record<string, unknown>}} config the page's config (JSON from Python)
 * @param {Manifest} manifest
 * @returns {Defaults}
 */
export function resolveDefaults(config, manifest) {
  const given = config.defaults ?? {};
  const problems = [];
  /** @type {(name: string, valid: (v: any) => boolean) => any} a valid value, of whatever type `valid` checks */
  const take = (name, valid) => {
    if (!(name in given) || !valid(given[name])) problems.push(name);
    return given[name];
  };
  /** @type {(name: string, valid: (v: any) => boolean, fallback: any) => any} a valid value if given, else the fallback */
  const optional = (name, valid, fallback) => {
    if (!(name in given)) return fallback;
    if (!valid(given[name])) problems.push(name);
    return given[name];
  };
  const index = (length) => (v) => Number.isInteger(v) && v >= 0 && v < length;
  const bool = (v) => typeof v === "boolean";
  const names = take("outputs", (v) => Array.isArray(v) && v.length > 0 && v.every((n) => manifest.outputs.includes(n)));
  const defaults = {
    trajectory: take("trajectory", index(manifest.trajectory_lengths.length)),
    layer: manifest.default_layer,
    fps: manifest.fps,
    outputs: (names ?? []).map((name) => manifest.outputs.indexOf(name)),
    overlay: take("overlay", bool),
    combine: take("combine", bool),
    residual: take("residual", bool),
    popup: take("popup", (v) => v && Number.isInteger(v.expand_mult) && typeof v.subdiv_mult === "number"),
    scrubberFrames: take("scrubberFrames", (v) => Number.isInteger(v) && v >= 8),
    residualColor: take("residualColor", (v) => typeof v === "string" && HEX.test(v)),
    memoryColor: optional("memoryColor", (v) => typeof v === "string" && HEX.test(v), PAGE_DEFAULTS.memoryColor),
    gain: validGain(optional("gain", (v) => validGain(v) !== null, PAGE_DEFAULTS.gain)) ?? PAGE_DEFAULTS.gain, // on the slider's steps
    observationOpacity: optional("observationOpacity", (v) => typeof v === "number" && v >= 0 && v <= 1, PAGE_DEFAULTS.observationOpacity),
  };
  if (problems.length) throw new Error(`the page's settings lack valid defaults for: ${problems.join(", ")}`);
  return defaults;
}
