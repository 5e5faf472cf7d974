// The explanation methods of a run (Manifest.methods) as the page uses them: the effective list
// (a manifest without `methods` means integrated gradients of every output at every layer),
// which methods explain an output, where each was computed, and its payload keys.

import { DEFAULT_KEY_PREFIX, DEFAULT_METHOD, INPUT_SITE, keys } from "./contract.js";

/** @typedef {import("./contract.js").Manifest} Manifest */
/** @typedef {import("./contract.js").MethodEntry} MethodEntry */

const effective = new WeakMap();

/**
 * The methods in menu order: manifest.methods, or what its absence means.
 * @param {Manifest} manifest @returns {MethodEntry[]}
 */
export function methodList(manifest) {
  let list = effective.get(manifest);
  if (!list) {
    list = manifest.methods?.length
      ? manifest.methods
      : [
          {
            ...DEFAULT_METHOD,
            produces: "channels",
            signed: true,
            outputs: manifest.outputs.map((_, o) => o),
            layers: manifest.layers.map((_, l) => l),
            key_prefix: DEFAULT_KEY_PREFIX,
          },
        ];
    effective.set(manifest, list);
  }
  return list;
}

/** A map method computed on the input (its maps are at the observation's resolution). */
export const isInputMap = (/** @type {MethodEntry} */ method) => method.produces === "map" && !method.layers.length;

/** Whether the method has maps for this layer (input maps and trees, computed at no layer: every layer). */
export const computedAt = (/** @type {MethodEntry} */ method, layer) =>
  (method.produces !== "channels" && !method.layers.length) || method.layers.includes(layer);

/** The site of a map method's payloads at a layer: the layer, or -1 for the input. */
export const siteOf = (/** @type {MethodEntry} */ method, layer) => (isInputMap(method) ? -1 : layer);

/** The payload key of a method's maps of one output. @param {MethodEntry} method */
export function payloadKey(method, layer, trajectory, output) {
  if (method.produces === "channels") return keys.attribution(method.key_prefix, layer, trajectory, output);
  if (method.produces === "tree") return keys.tree(method.key_prefix, trajectory, output);
  const site = siteOf(method, layer);
  return keys.map(method.key_prefix, site < 0 ? INPUT_SITE : site, trajectory, output);
}

/** The method's "actor" and "value" outputs, when it explains both (shown together, blue and red). */
export function actorCritic(/** @type {Manifest} */ manifest, /** @type {MethodEntry} */ method) {
  const actor = manifest.outputs.indexOf("actor");
  const critic = manifest.outputs.indexOf("value");
  return method.produces === "map" && actor >= 0 && critic >= 0 && method.outputs.includes(actor) && method.outputs.includes(critic)
    ? { actor, critic }
    : null;
}

/**
 * Indices of the methods that explain an output (or, with pair, the actor and the critic together).
 * @param {Manifest} manifest @param {number} output @param {boolean} [pair]
 */
export function methodsFor(manifest, output, pair = false) {
  return methodList(manifest).flatMap((m, i) =>
    (pair ? actorCritic(manifest, m) !== null : m.outputs.includes(output)) ? [i] : [],
  );
}

/** The output an attention agent's own methods explain (attribution/outputs.py ATTENTION_OUTPUT). */
export const ATTENTION_OUTPUT = "attention";

/** Whether a method explains the attention output only (an attention agent's map and tree). */
export const attentionOnly = (/** @type {Manifest} */ manifest, /** @type {MethodEntry} */ method) =>
  method.outputs.length > 0 && method.outputs.every((o) => manifest.outputs[o] === ATTENTION_OUTPUT);

/**
 * A row's method menu: the methods that explain its output, and the attention-only methods that
 * do not (every row lists them, so that they are found; choosing one explains the attention).
 * @param {Manifest} manifest @param {number} output @param {boolean} [pair]
 * @returns {{here: number[], attention: number[]}}
 */
export function methodMenu(manifest, output, pair = false) {
  const here = methodsFor(manifest, output, pair);
  const attention = methodList(manifest).flatMap((m, i) => (!here.includes(i) && attentionOnly(manifest, m) ? [i] : []));
  return { here, attention };
}

/** Whether any method explains the actor and the critic. */
export const hasPair = (/** @type {Manifest} */ manifest) => methodList(manifest).some((m) => actorCritic(manifest, m));

/** The layer labels a method was computed at, for "computed at 2b, 3b only". */
export function layerLabels(/** @type {Manifest} */ manifest, /** @type {MethodEntry} */ method) {
  return method.layers.map((l) => manifest.layers[l]?.label ?? String(l + 1)).join(", ");
}

/** Why a method has nothing to show at a layer, or "" when it does. */
export function unavailableReason(/** @type {Manifest} */ manifest, /** @type {MethodEntry} */ method, layer) {
  if (computedAt(method, layer)) return "";
  const here = manifest.layers[layer]?.label ?? String(layer + 1);
  return `${method.title} was not computed at layer ${here}, only at ${layerLabels(manifest, method)}: choose one of those layers or another method`;
}

/** What the method is, in one text (hover notes, accessible descriptions). */
export function describe(/** @type {MethodEntry} */ method) {
  return `${method.title}: ${method.summary} (${method.citation})`;
}

/**
 * The method a row moves to when it cycles: the next (direction 1) or previous (-1) among those
 * explaining its output and computed at the layer, wrapping around; the current one if alone.
 * @param {Manifest} manifest @param {{method: number, output: number, pair: boolean}} row
 */
export function cycleMethod(manifest, row, layer, direction) {
  const list = methodList(manifest);
  const candidates = methodsFor(manifest, row.output, row.pair).filter(
    (m) => m === row.method || computedAt(list[m], layer),
  );
  const here = candidates.indexOf(row.method);
  if (!candidates.length) return row.method;
  if (here < 0) return candidates[direction > 0 ? 0 : candidates.length - 1];
  return candidates[(here + direction + candidates.length) % candidates.length];
}

/**
 * The method an output is first shown with: the preferred one if it explains the output (and
 * is computed at the layer), else the first that is, else the first that explains it at all;
 * -1 if none explains it.
 * @param {Manifest} manifest @param {number} output @param {number} layer @param {number} [preferred]
 */
export function methodForOutput(manifest, output, layer, preferred = -1, pair = false) {
  const list = methodList(manifest);
  const candidates = methodsFor(manifest, output, pair);
  const here = candidates.filter((m) => computedAt(list[m], layer));
  if (here.includes(preferred)) return preferred;
  if (here.length) return here[0];
  if (candidates.includes(preferred)) return preferred;
  return candidates.length ? candidates[0] : -1;
}
