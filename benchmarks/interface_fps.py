"""Interface speed in headless Chromium (the system one): first paint, from navigation to the first
attribution map drawn, and scrubbing, as attribution frames drawn per second while the scrubber is
dragged by the pointer and while arrow keys are pressed in the page every 2 ms. The page draws at
most once per animation frame, so the animation frame rate (printed) bounds both.

    .venv/bin/python benchmarks/interface_fps.py [--interface rl-vision-demo/interface.html]

Without --interface it first builds the browser tests' small interface in a temporary folder (a
random IMPALA agent on CoinRun, 2 trajectories x 24 frames, layers 2b and 3b; about 20 s). The
figures in docs/benchmarks.md are for `make demo`'s output. The last line is machine-readable:
RESULT interface_fps first_paint_ms=<ms> arrow_fps=<f> pointer_fps=<f>
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "browser"))
from chromium_setup import CHROMIUM_ARGS, build_small_interface  # the browser tests' own

VIEWPORT = {"width": 1280, "height": 800}
DRAWN = "window.__rlv_metrics && window.__rlv_metrics.firstAttributionDraw !== null"

SETTLE = """(n) => new Promise((done) => {
  const step = () => (n-- > 0 ? requestAnimationFrame(step) : setTimeout(done, 30));
  setTimeout(step, 30);
})"""

# Arrow keys pressed in the page every 2 ms, turning round at either end of the trajectory.
ARROW_KEYS = """(ms) => new Promise((done) => {
  const metrics = window.__rlv_metrics;
  const before = metrics.framesDrawn;
  const t0 = performance.now();
  let key = "ArrowRight", presses = 0, last = -1;
  const press = () => {
    const frame = Number(document.querySelector(".frame-number").textContent);
    if (frame === last) key = key === "ArrowRight" ? "ArrowLeft" : "ArrowRight";
    last = frame;
    window.dispatchEvent(new KeyboardEvent("keydown", { key, bubbles: true }));
    presses++;
    if (performance.now() - t0 < ms) setTimeout(press, 2);
    else requestAnimationFrame(() => requestAnimationFrame(() => {
      const seconds = (performance.now() - t0) / 1000;
      done({ fps: (metrics.framesDrawn - before) / seconds, presses: presses / seconds });
    }));
  };
  press();
})"""

ANIMATION_FPS = """() => new Promise((done) => {
  let n = 0; const t0 = performance.now();
  const tick = () => (++n, performance.now() - t0 < 1000 ? requestAnimationFrame(tick) : done(n));
  requestAnimationFrame(tick);
})"""


def first_paint(browser, interface: Path) -> float:
    """ms from navigation to the first attribution map drawn, in a fresh page."""
    page = browser.new_page(viewport=VIEWPORT)
    try:
        page.goto(interface.as_uri())
        page.wait_for_function(DRAWN, timeout=60_000)
        return page.evaluate("window.__rlv_metrics.firstAttributionDraw")
    finally:
        page.close()


def pointer_scrub(page, seconds: float) -> tuple[float, float]:
    """Drag the scrubber back and forth for `seconds`: (frames drawn per second, moves per second)."""
    box = page.get_by_role("slider", name="frame scrubber").bounding_box()
    y = box["y"] + box["height"] / 2
    before = page.evaluate("window.__rlv_metrics.framesDrawn")
    page.mouse.move(box["x"] + 1, y)
    page.mouse.down()
    began = time.perf_counter()
    moves = 0
    while time.perf_counter() - began < seconds:
        fraction = (moves % 60) / 59
        fraction = fraction if (moves // 60) % 2 == 0 else 1 - fraction
        page.mouse.move(box["x"] + 1 + fraction * (box["width"] - 2), y)
        moves += 1
    page.mouse.up()
    elapsed = time.perf_counter() - began
    page.evaluate(SETTLE, 3)
    drawn = page.evaluate("window.__rlv_metrics.framesDrawn") - before
    return drawn / elapsed, moves / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--interface", type=Path, help="an interface.html (default: build a small one)")
    parser.add_argument("--loads", type=int, default=3, help="page loads timed for first paint (median)")
    parser.add_argument("--seconds", type=float, default=2.0, help="length of each scrub")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    executable = shutil.which("chromium") or shutil.which("chromium-browser")
    if not executable:
        sys.exit("needs Chromium: apt-get install -y chromium (or make chromium)")
    with tempfile.TemporaryDirectory(prefix="rlv-fps-") as scratch:
        interface = args.interface.resolve() if args.interface else build_small_interface(Path(scratch))
        print(f"interface: {interface}", flush=True)
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
            try:
                paints = [first_paint(browser, interface) for _ in range(args.loads)]
                paint = statistics.median(paints)
                print(
                    f"first paint: {paint:.0f} ms after navigation (median of {', '.join(f'{p:.0f}' for p in paints)})",
                    flush=True,
                )
                page = browser.new_page(viewport=VIEWPORT)
                page.goto(interface.as_uri())
                page.wait_for_function(DRAWN, timeout=60_000)
                page.evaluate(SETTLE, 3)
                animation = page.evaluate(ANIMATION_FPS)
                pointer_fps, moves = pointer_scrub(page, args.seconds)
                print(
                    f"scrub by pointer: {pointer_fps:.1f} frames drawn per second ({moves:.0f} pointer moves/s "
                    f"from the driver; the page animates at {animation} frames/s)",
                    flush=True,
                )
                keyed = page.evaluate(ARROW_KEYS, args.seconds * 1000)
                print(
                    f"scrub by arrow keys in the page: {keyed['fps']:.1f} frames drawn per second "
                    f"({keyed['presses']:.0f} key presses/s)",
                    flush=True,
                )
            finally:
                browser.close()
    static = Path(__file__).resolve().parents[1] / "understanding_rl_vision" / "render" / "static"
    sizes = ", ".join(f"{p.name} {p.stat().st_size / 1000:.1f} kB" for p in sorted(static.iterdir()))
    print(f"the package's bundle (what a new interface.html inlines): {sizes}")
    print(f"RESULT interface_fps first_paint_ms={paint:.0f} arrow_fps={keyed['fps']:.1f} pointer_fps={pointer_fps:.1f}")


if __name__ == "__main__":
    main()
