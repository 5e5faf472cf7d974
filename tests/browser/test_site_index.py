"""A site of two real runs in Chromium: the index lists them with their thumbnails, and each link
opens a working page that runs the one shared bundle, from file:// and over http."""

import threading

import pytest
from chromium_setup import SMALL_RUN, random_checkpoint

from understanding_rl_vision import rl_clarity
from understanding_rl_vision.serve import make_server, url_of

HOSTILE = "<img src=x onerror=alert(1)>"


@pytest.fixture(scope="module")
def site(small_interface, tmp_path_factory):
    folder = tmp_path_factory.mktemp("site")
    second = rl_clarity.run(random_checkpoint(folder), folder / "hostile", title=HOSTILE, **SMALL_RUN)
    return rl_clarity.site([small_interface.parent, second.directory], folder / "site", title="Two runs")


def check_site(page, url):
    dialogs = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    page.goto(url)
    runs = page.locator("li.run")
    assert runs.count() == 2 and page.title() == "Two runs"
    assert [runs.nth(i).locator("h2").inner_text() for i in range(2)] == ["random agent", HOSTILE]
    widths = page.eval_on_selector_all("li.run img", "images => images.map(i => i.complete ? i.naturalWidth : 0)")
    assert widths == [128, 128]  # each 64-pixel frame enlarged twice, loaded
    for i, expected in enumerate(["random agent", HOSTILE]):
        page.goto(url)
        page.locator("li.run h2 a").nth(i).click()
        heading = page.locator("h1")
        heading.wait_for()
        assert page.title() == expected and heading.inner_text().endswith("on procgen:coinrun")
        assert "2 trajectories" in page.locator("main").inner_text()
        scripts = page.evaluate("[...document.scripts].map(s => [s.src, s.text.length])")
        assert [src for src, _ in scripts if src.endswith("app.js")] == [url.rsplit("/", 1)[0] + "/assets/app.js"]
        assert max(length for _, length in scripts) < 10_000  # the bundle is the shared copy, not inlined
    assert not dialogs


def test_the_site_works_from_a_file_url(page, site):
    check_site(page, site.as_uri())


def test_the_site_works_from_a_static_server(page, site):
    server = make_server(site.parent, port=0, quiet=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        check_site(page, url_of(server))
    finally:
        page.goto("about:blank")  # no load still in flight when the server goes (it would log an error)
        server.shutdown()
        server.server_close()
