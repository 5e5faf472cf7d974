// Seek by pointer: press and drag over an element whose width spans the timeline window
// (the scrubber and the line graphs). The window holds still during a drag.

const clamp = (v, lo, hi) => Math.min(Math.max(v, lo), hi);

/** A Svelte action: use:scrub={app} */
export function scrub(node, app) {
  let pointer = null;
  const frameAt = (event) => {
    const box = node.getBoundingClientRect();
    const count = app.windowCount;
    const i = Math.floor(((event.clientX - box.left) / Math.max(box.width, 1)) * count);
    return app.windowStart + clamp(i, 0, count - 1);
  };
  const down = (event) => {
    if (event.button !== 0) return;
    event.preventDefault();
    pointer = event.pointerId;
    node.setPointerCapture?.(pointer);
    app.pause();
    app.heldStart = app.windowStart;
    app.setFrame(frameAt(event));
    node.focus?.({ preventScroll: true });
  };
  const move = (event) => {
    if (event.pointerId === pointer) app.setFrame(frameAt(event));
  };
  const up = (event) => {
    if (event.pointerId !== pointer) return;
    pointer = null;
    app.heldStart = null;
  };
  node.addEventListener("pointerdown", down);
  node.addEventListener("pointermove", move);
  node.addEventListener("pointerup", up);
  node.addEventListener("pointercancel", up);
  return {
    destroy() {
      node.removeEventListener("pointerdown", down);
      node.removeEventListener("pointermove", move);
      node.removeEventListener("pointerup", up);
      node.removeEventListener("pointercancel", up);
    },
  };
}
