// The names of the explained outputs, as the export writes them (Manifest.outputs, from
// understanding_rl_vision/attribution/outputs.py): "value", "logit:<action>" (a Q-value when the
// agent is a Q-network), "group:<name>" (an action group's summed logits); any other name is
// shown as it is. Parsed here once for the output menu, the labels and the line graphs.

/** @typedef {import("./contract.js").Manifest} Manifest */

/**
 * An output name split at its first ":": `kind` is the part before it ("logit", "group", ...)
 * or null for a name without one ("value"); `arg` is the rest (the whole name if no ":").
 * @typedef {{kind: string | null, arg: string}} OutputName
 */

/** @param {string} name @returns {OutputName} */
export function parseOutput(name) {
  const colon = name.indexOf(":");
  return colon < 0 ? { kind: null, arg: name } : { kind: name.slice(0, colon), arg: name.slice(colon + 1) };
}

/**
 * How an output is named on the page: as exported, except that "action" (the logit of the action
 * taken at each frame) and "actor" (every logit at once) are spelt out, and a Q-network's
 * "logit:" entries are its Q-values and its value is the largest of them.
 * @param {{action_outputs: string}} manifest
 * @param {string} name
 */
export function outputLabel(manifest, name) {
  const q = manifest.action_outputs === "q_values";
  if (name === "action") return q ? "Q of the action taken" : "logit of the action taken";
  if (name === "actor") return q ? "actor (all Q-values)" : "actor (all logits)";
  if (!q) return name;
  const { kind, arg } = parseOutput(name);
  if (name === "value") return "value (max Q)";
  if (kind === "logit") return `Q:${arg}`;
  if (kind === "group") return `Q group:${arg}`;
  return name;
}

/**
 * The action indices whose logits (or Q-values) an output sums: one for "logit:ACTION", the
 * group's for "group:NAME"; null for the value, other kinds and names the manifest lacks.
 * @param {Manifest} manifest @param {string} name @returns {number[] | null}
 */
export function outputActions(manifest, name) {
  const { kind, arg } = parseOutput(name);
  if (kind === "logit") {
    const i = manifest.action_names.indexOf(arg);
    return i >= 0 ? [i] : null;
  }
  if (kind === "group") return manifest.action_groups[arg] ?? null;
  return null;
}

/**
 * The output menu: every exported output as [label, index into Manifest.outputs], grouped as
 * [title, entries] by kind (plain names first, untitled; then logits or Q-values, groups and
 * any other kind), export order within a group, empty groups left out.
 * @param {Manifest} manifest @returns {[string, [string, number][]][]}
 */
export function outputMenu(manifest) {
  const kinds = manifest.outputs.map((name) => parseOutput(name).kind);
  /** @param {(kind: string | null) => boolean} wanted @returns {[string, number][]} */
  const entries = (wanted) =>
    manifest.outputs.flatMap((name, o) => (wanted(kinds[o]) ? [[outputLabel(manifest, name), o]] : []));
  /** @type {[string, [string, number][]][]} */
  const groups = [
    ["", entries((kind) => kind === null)],
    [manifest.action_outputs === "q_values" ? "Q-values" : "logits", entries((kind) => kind === "logit")],
    ["groups", entries((kind) => kind === "group")],
    ["other", entries((kind) => kind !== null && kind !== "logit" && kind !== "group")],
  ];
  return groups.filter(([, items]) => items.length);
}

/** The output menu's entry for perturbation's actor and critic maps shown together. */
export const PAIR_LABEL = "actor + critic";
