// The page's state: what is selected and shown, in one object of Svelte 5 runes that every
// section reads and changes through its methods. Frames, trajectories and layers are 0-indexed
// here; the URL and the text on the page count from 1.

import { resolveDefaults } from "./defaults.js";
import { getTrajectory } from "./data.js";
import { actorCritic, cycleMethod, methodForOutput, methodList } from "./methods.js";
import { decodeRows, encodeRows } from "./view.js";
import { validGain } from "./levels.js";
import { decodeNames, encodeNames, nameOf, nameProblem, withName } from "./names.js";

/** @typedef {import("./contract.js").Manifest} Manifest */
/** @typedef {import("./contract.js").Bookmark} Bookmark */
/** @typedef {import("./data.js").Trajectory} Trajectory */
/**
 * @typedef {object} Row  one attribution row
 * @property {number} id
 * @property {number} output  index into manifest.outputs (with pair: the actor)
 * @property {number} method  index into methodList(manifest)
 * @property {boolean} pair   the method's actor and critic maps together
 * @property {number} gain    full colour at the payload's high percentile / gain (levels.js)
 * @property {number} opacity the observation's opacity under the overlay
 */

const clamp = (v, lo, hi) => Math.min(Math.max(v, lo), hi);
const URL_WRITE_MS = 250; // browsers throttle frequent history.replaceState calls

let nextRowId = 1;

export class AppState {
  // Selections and options start from the defaults (defaults.js) in the constructor.
  trajectory = $state(0);
  layer = $state(0);
  frame = $state(0);
  /** 0 paused, 1 forwards, -1 backwards */
  playing = $state(0);
  fps = $state(1);
  /** @type {Row[]} one attribution row each */
  rows = $state([]);
  /** the compare view: every method's maps of one output, side by side */
  compare = $state(false);
  compareOutput = $state(0);
  compareGain = $state(1);
  compareOpacity = $state(1);
  overlay = $state(false);
  combine = $state(false);
  showResidual = $state(false);
  /** @type {number | "residual" | null} the feature isolated in every attribution view */
  hover = $state(null);
  /** @type {{layer: number, feature: number, opener: HTMLElement | null} | null} the open feature popup */
  popup = $state(null);
  /** @type {number | null} the first frame visible in the scrubber and line graphs while a drag holds it still */
  heldStart = $state(null);
  /** @type {Trajectory | null} the current trajectory once loaded */
  traj = $state.raw(null);
  trajError = $state("");
  /** @type {import("./names.js").Names} feature names given on the page (names.js), kept in the URL */
  names = $state.raw({});

  /** @param {Manifest} manifest @param {object} config */
  constructor(manifest, config) {
    this.manifest = manifest;
    this.defaults = resolveDefaults(config, manifest);
    const d = this.defaults;
    this.trajectory = d.trajectory;
    this.layer = d.layer;
    this.fps = d.fps;
    this.overlay = d.overlay;
    this.combine = d.combine;
    this.showResidual = d.residual;
    this.methods = methodList(manifest);
    this.rows = d.outputs.map((output) => this.#newRow(output));
    this.compareOutput = d.outputs[0] ?? 0;
    this.compareGain = d.gain;
    this.compareOpacity = d.observationOpacity;
    /** Trajectories the agent played; the states of interest's come after them (Manifest.played_trajectories). */
    this.played = manifest.states
      ? Math.min(...manifest.states.targets.map((target) => target.trajectory))
      : manifest.trajectory_lengths.length;
    /** The played trajectories' bookmarks, in order. */
    this.bookmarks = manifest.bookmarks
      .filter((b) => b.trajectory < this.played)
      .sort((a, b) => a.trajectory - b.trajectory || a.frame - b.frame);
    this.readUrl(typeof location === "undefined" ? "" : location.search);
  }

  get length() {
    return this.manifest.trajectory_lengths[this.trajectory];
  }

  /** The current trajectory's data, or null while it loads. */
  get data() {
    return this.traj?.index === this.trajectory ? this.traj : null;
  }

  get layerInfo() {
    return this.manifest.layers[this.layer];
  }

  /** First frame shown by the scrubber and line graphs: the window follows the frame. */
  get windowStart() {
    if (this.heldStart !== null) return this.heldStart;
    const count = Math.min(this.defaults.scrubberFrames, this.length);
    return clamp(this.frame - Math.floor(count / 2), 0, this.length - count);
  }

  get windowCount() {
    return Math.min(this.defaults.scrubberFrames, this.length);
  }

  // ---------------------------------------------------------------- navigation

  /** Go to a trajectory and frame (clamped). */
  goto(trajectory, frame = 0) {
    trajectory = clamp(Math.trunc(trajectory), 0, this.manifest.trajectory_lengths.length - 1);
    if (trajectory !== this.trajectory) {
      this.trajectory = trajectory;
      this.heldStart = null;
    }
    this.setFrame(frame);
  }

  setFrame(frame) {
    this.frame = clamp(Math.round(frame), 0, this.length - 1);
  }

  step(delta) {
    this.setFrame(this.frame + delta);
  }

  setLayer(layer) {
    if (layer >= 0 && layer < this.manifest.layers.length) {
      this.layer = layer;
      this.hover = null;
    }
  }

  /** The states-of-interest target whose generated states trajectory `t` holds, else null.
   * @returns {import("./contract.js").StateTarget | null} */
  stateTarget(t = this.trajectory) {
    return this.manifest.states?.targets.find((target) => target.trajectory === t) ?? null;
  }

  /** How the page names trajectory `t`: "trajectory 2", or "States of interest: T+ high value". */
  trajectoryLabel(t = this.trajectory) {
    const target = this.stateTarget(t);
    return target ? `States of interest: ${target.title}` : `trajectory ${t + 1}`;
  }

  /** Show a generated state like any frame: its target's trajectory, at the state's index. */
  showState(target, index) {
    this.pause();
    this.goto(target.trajectory, index);
  }

  /** The bookmark before (direction -1) or after (+1) the current frame, or null. */
  bookmarkFrom(direction) {
    const here = [this.trajectory, this.frame];
    const compare = (b) => b.trajectory - here[0] || b.frame - here[1];
    if (direction > 0) return this.bookmarks.find((b) => compare(b) > 0) ?? null;
    return this.bookmarks.findLast((b) => compare(b) < 0) ?? null;
  }

  jumpBookmark(direction) {
    const bookmark = this.bookmarkFrom(direction);
    if (bookmark) this.goto(bookmark.trajectory, bookmark.frame);
  }

  // ---------------------------------------------------------------- playback

  #last = 0;
  #handle = 0;

  /** Play forwards (1) or backwards (-1); playing again in the same direction pauses. */
  play(direction) {
    if (this.playing === direction) return this.pause();
    if (this.frame === (direction > 0 ? this.length - 1 : 0)) this.setFrame(direction > 0 ? 0 : this.length - 1);
    this.playing = direction;
    this.#last = performance.now();
    cancelAnimationFrame(this.#handle);
    this.#handle = requestAnimationFrame(this.#tick);
  }

  pause() {
    this.playing = 0;
    cancelAnimationFrame(this.#handle);
  }

  togglePlay() {
    if (this.playing) this.pause();
    else this.play(1);
  }

  /** Arrow keys: step while paused, choose the direction while playing. */
  arrow(direction) {
    if (!this.playing) this.step(direction);
    else if (this.playing !== direction) this.play(direction);
  }

  #tick = (now) => {
    if (!this.playing) return;
    const period = 1000 / Math.max(this.fps, 0.1);
    const steps = Math.floor((now - this.#last) / period);
    if (steps > 0) {
      this.#last += steps * period;
      const next = this.frame + this.playing * steps;
      this.setFrame(next);
      if (next < 0 || next > this.length - 1) return this.pause();
    }
    this.#handle = requestAnimationFrame(this.#tick);
  };

  // ---------------------------------------------------------------- attribution rows

  /** @returns {Row} */
  #newRow(output, method = -1) {
    const chosen = methodForOutput(this.manifest, output, this.layer, method);
    return {
      id: nextRowId++,
      output,
      method: Math.max(chosen, 0),
      pair: false,
      gain: this.defaults.gain,
      opacity: this.defaults.observationOpacity,
    };
  }

  /** @param {number} id */
  row(id) {
    return this.rows.find((r) => r.id === id);
  }

  addRow() {
    const shown = new Set(this.rows.map((row) => row.output));
    const output = this.manifest.outputs.findIndex((_, i) => !shown.has(i));
    this.rows.push(this.#newRow(Math.max(output, 0)));
  }

  /** Explain another output; the method changes only if it does not explain that output. */
  setRowOutput(id, output) {
    const row = this.row(id);
    if (!row || !(output >= 0 && output < this.manifest.outputs.length)) return;
    row.output = output;
    row.pair = false;
    if (!this.methods[row.method].outputs.includes(output)) {
      row.method = Math.max(methodForOutput(this.manifest, output, this.layer, row.method), 0);
    }
  }

  /** Show a method's actor and critic maps together (keeping the row's method if it has both). */
  setRowPair(id) {
    const row = this.row(id);
    if (!row) return;
    const method = methodForOutput(this.manifest, -1, this.layer, row.method, true);
    const pair = method >= 0 ? actorCritic(this.manifest, this.methods[method]) : null;
    if (!pair) return;
    Object.assign(row, { method, output: pair.actor, pair: true });
  }

  /** Explain the row's output with another method; if that method does not explain it, its first output. */
  setRowMethod(id, method) {
    const row = this.row(id);
    const entry = this.methods[method];
    if (!row || !entry) return;
    row.method = method;
    if (row.pair && !actorCritic(this.manifest, entry)) row.pair = false;
    if (!row.pair && !entry.outputs.includes(row.output)) row.output = entry.outputs[0];
  }

  setRowGain(id, gain) {
    const row = this.row(id);
    const valid = validGain(gain);
    if (row && valid !== null) row.gain = valid;
  }

  setRowOpacity(id, opacity) {
    const row = this.row(id);
    if (row && opacity >= 0 && opacity <= 1) row.opacity = opacity;
  }

  /** The next (1) or previous (-1) method of a row, among those computed at this layer. */
  cycleRowMethod(id, direction = 1) {
    const row = this.row(id);
    if (row) this.setRowMethod(id, cycleMethod(this.manifest, row, this.layer, direction));
  }

  removeRow(id) {
    if (this.rows.length > 1) this.rows = this.rows.filter((row) => row.id !== id);
  }

  // ---------------------------------------------------------------- feature names

  /** Feature k of a layer as the page names it: the name given here, else the manifest's. */
  featureName(layer, k) {
    return nameOf(this.names, this.manifest.layers[layer], k);
  }

  /** Name feature k of a layer (an empty text restores the manifest's name); returns why not, or "". */
  renameFeature(layer, k, text) {
    const info = this.manifest.layers[layer];
    if (!info || !(k >= 0 && k < info.features.length)) return "no such feature";
    if (text.trim()) {
      const problem = nameProblem(this.names, info, k, text);
      if (problem) return problem;
    }
    this.names = withName(this.names, info, k, text);
    return "";
  }

  // ---------------------------------------------------------------- popup

  /** @param {number} feature @param {HTMLElement | null} [opener] where focus returns on closing */
  openPopup(feature, opener = null) {
    this.pause();
    this.popup = { layer: this.layer, feature, opener };
  }

  closePopup() {
    const opener = this.popup?.opener;
    this.popup = null;
    if (opener?.isConnected) opener.focus();
  }

  // ---------------------------------------------------------------- URL & loading

  /** ?trajectory=&layer=&frame=, 1-indexed (layer also by label); rows= and compare= (view.js); names= (names.js). */
  readUrl(search) {
    const params = new URLSearchParams(search);
    const number = (name) => {
      const text = params.get(name);
      return text !== null && /^\d+$/.test(text) ? Number(text) - 1 : null;
    };
    const trajectory = number("trajectory");
    if (trajectory !== null && trajectory < this.manifest.trajectory_lengths.length) this.trajectory = trajectory;
    const layerText = params.get("layer");
    const byLabel = this.manifest.layers.findIndex((layer) => layer.label === layerText);
    const layer = byLabel >= 0 ? byLabel : number("layer");
    if (layer !== null && layer >= 0 && layer < this.manifest.layers.length) this.layer = layer;
    const frame = number("frame");
    if (frame !== null) this.setFrame(frame);
    const rowsText = params.get("rows");
    if (rowsText !== null) {
      const views = decodeRows(this.manifest, rowsText, this.#viewDefaults(), (output, pair) =>
        methodForOutput(this.manifest, output, this.layer, -1, pair),
      );
      if (views.length) this.rows = views.map((view) => ({ id: nextRowId++, ...view }));
    }
    const compare = number("compare");
    if (compare !== null && compare >= 0 && compare < this.manifest.outputs.length) {
      this.compare = true;
      this.compareOutput = compare;
    }
    this.names = decodeNames(this.manifest, params.get("names"));
  }

  #viewDefaults() {
    return { gain: this.defaults.gain, opacity: this.defaults.observationOpacity };
  }

  /** The URL of a place, with the current view (rows and compare) and the feature names. */
  urlFor(trajectory, frame, layer = this.layer) {
    const rows = encodeRows(this.manifest, this.rows, this.#viewDefaults());
    const compare = this.compare ? `&compare=${this.compareOutput + 1}` : "";
    const named = encodeNames(this.names);
    const names = named ? `&names=${encodeURIComponent(named)}` : "";
    return `?trajectory=${trajectory + 1}&layer=${layer + 1}&frame=${frame + 1}&rows=${rows}${compare}${names}`;
  }

  /** Effects that keep the URL and the loaded trajectory in step; call during component setup. */
  connect() {
    // The URL follows at most every URL_WRITE_MS, always ending on the latest state.
    let timer = 0;
    let latest = "";
    let written = "";
    const write = () => {
      timer = 0;
      if (latest === written) return;
      written = latest;
      try {
        history.replaceState(history.state, "", latest);
      } catch {
        // some hosts refuse URL changes (e.g. sandboxed frames); the page works without
      }
      timer = setTimeout(write, URL_WRITE_MS);
    };
    $effect(() => {
      latest = this.urlFor(this.trajectory, this.frame, this.layer);
      if (!timer) timer = setTimeout(write, URL_WRITE_MS);
    });
    $effect(() => {
      const t = this.trajectory;
      let current = true;
      this.trajError = "";
      getTrajectory(t).then(
        (traj) => current && (this.traj = traj),
        (error) => current && (this.trajError = error.message),
      );
      return () => (current = false);
    });
  }
}
