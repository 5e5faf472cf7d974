// Feature names a person gives on the page: kept in the URL so that a reload or a shared link
// keeps them, and saved as a small JSON file that `run --feature-names FILE` reads back
// (understanding_rl_vision.editing.names.read_feature_names).
//
//   names={"2b":{"1":"wall","3":"coin"}}   JSON (URL-encoded): layer label -> {1-based feature
//        number: name}; only names that differ from the manifest's (FeatureInfo.name). Invalid
//        entries (unknown layer or feature, not a string, empty or over MAX_NAME characters, a
//        name another feature of the layer already has) are dropped, so a bad link still opens.

/** @typedef {import("./contract.js").Manifest} Manifest */
/** @typedef {import("./contract.js").LayerInfo} LayerInfo */
/** @typedef {Record<string, Record<string, string>>} Names  layer label -> {"1": name, ...} */

export const MAX_NAME = 40;
export const NAMES_FORMAT = "understanding-rl-vision-feature-names";
export const NAMES_VERSION = 1;

/** The name the page shows without any given: "feature 3". */
export const defaultName = (/** @type {number} */ k) => `feature ${k + 1}`;

/** Feature k's name: given on the page, else the manifest's. @param {Names} names @param {LayerInfo} layer */
export const nameOf = (names, layer, k) => names[layer.label]?.[String(k + 1)] ?? layer.features[k].name;

/**
 * Why `text` cannot name feature k of `layer` ("" when it can): trimmed, 1..MAX_NAME characters
 * (code points, as Python counts them), one line, unique within the layer.
 * @param {Names} names @param {LayerInfo} layer @param {number} k @param {string} text
 */
export function nameProblem(names, layer, k, text) {
  const name = text.trim();
  if (!name) return "a name needs at least one character";
  if ([...name].length > MAX_NAME) return `a name has at most ${MAX_NAME} characters`;
  if (/[\t\n\r]/.test(name)) return "a name is one line, without tabs";
  const other = layer.features.findIndex((_, j) => j !== k && nameOf(names, layer, j) === name);
  return other >= 0 ? `“${name}” already names feature ${other + 1}` : "";
}

/**
 * Names with feature k of `layer` called `text` (trimmed); an empty text, or the manifest's own
 * name, drops the given name. Check nameProblem first.
 * @param {Names} names @param {LayerInfo} layer @param {number} k @param {string} text @returns {Names}
 */
export function withName(names, layer, k, text) {
  const name = text.trim();
  const own = { ...(names[layer.label] ?? {}) };
  if (!name || name === layer.features[k].name) delete own[String(k + 1)];
  else own[String(k + 1)] = name;
  const next = { ...names };
  if (Object.keys(own).length) next[layer.label] = own;
  else delete next[layer.label];
  return next;
}

/** The URL value of the names ("" when there are none). @param {Names} names */
export function encodeNames(names) {
  const layers = Object.keys(names).filter((label) => Object.keys(names[label]).length);
  if (!layers.length) return "";
  return JSON.stringify(Object.fromEntries(layers.map((label) => [label, names[label]])));
}

/**
 * The names of a names= value, keeping only the valid ones (see the top of this file).
 * @param {Manifest} manifest @param {string | null} text @returns {Names}
 */
export function decodeNames(manifest, text) {
  let parsed;
  try {
    parsed = text ? JSON.parse(text) : null;
  } catch {
    return {};
  }
  if (!isObject(parsed)) return {};
  /** @type {Names} */
  let names = {};
  for (const layer of manifest.layers) {
    const given = parsed[layer.label];
    if (!isObject(given)) continue;
    for (const [number, name] of Object.entries(given)) {
      const k = /^[1-9]\d*$/.test(number) ? Number(number) - 1 : -1;
      if (k < 0 || k >= layer.features.length || typeof name !== "string") continue;
      if (!nameProblem(names, layer, k, name)) names = withName(names, layer, k, name);
    }
  }
  return names;
}

/**
 * The downloadable file: every feature whose name is not the default "feature k", by layer label.
 * @param {Manifest} manifest @param {Names} names
 */
export function namesFile(manifest, names) {
  /** @type {Names} */
  const layers = {};
  for (const layer of manifest.layers) {
    const named = layer.features
      .map((_, k) => [String(k + 1), nameOf(names, layer, k)])
      .filter(([number, name]) => name !== defaultName(Number(number) - 1));
    if (named.length) layers[layer.label] = Object.fromEntries(named);
  }
  return { format: NAMES_FORMAT, version: NAMES_VERSION, agent: manifest.agent, layers };
}

/** A file name for the names of this agent: "feature-names-<agent>.json", safe characters only. */
export const namesFileName = (/** @type {string} */ agent) =>
  `feature-names-${agent.replace(/[^A-Za-z0-9_.-]+/g, "-").replace(/^[-.]+|[-.]+$/g, "") || "agent"}.json`;

const isObject = (value) => typeof value === "object" && value !== null && !Array.isArray(value);
