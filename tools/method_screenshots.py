"""The screenshots of the explanation methods in docs/screenshots/, taken of `make demo`'s output in
headless Chromium (the browser tests' flags). Each is a view the page's URL describes, so the same
view opens in any browser with the query shown in the caption.

    .venv/bin/python tools/method_screenshots.py rl-vision-demo/interface.html docs/screenshots
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "browser"))
from chromium_setup import CHROMIUM_ARGS  # the browser tests' own flags

DRAWN = "window.__rlv_metrics && window.__rlv_metrics.firstAttributionDraw !== null"
WHERE = "trajectory=3&frame=101&layer=2b"  # an unexpected success (a high-advantage bookmark)
VIEWS = {
    # name: (query, what to capture: a CSS selector, or the whole page)
    "methods-ig-old-scale": (f"{WHERE}&rows=1.ig.g-5", "section.attribution"),
    "methods-ig-default-gain": (f"{WHERE}&rows=1.ig", "section.attribution"),
    "methods-rows": (f"{WHERE}&rows=2.gradcam,3%2B1.perturbation", "section.attribution"),
    "methods-compare": (f"{WHERE}&compare=2", "section.compare"),
}


def main(interface: Path, folder: Path) -> None:
    from playwright.sync_api import sync_playwright

    folder.mkdir(parents=True, exist_ok=True)
    executable = shutil.which("chromium") or shutil.which("chromium-browser")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        for name, (query, selector) in VIEWS.items():
            page.goto(f"{interface.resolve().as_uri()}?{query}")
            page.wait_for_function(DRAWN, timeout=30_000)
            page.wait_for_timeout(1500)  # payloads of the other rows and cells
            page.locator(selector).screenshot(path=str(folder / f"{name}.png"))
            print(f"{folder / name}.png  ?{query}")
        browser.close()


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
