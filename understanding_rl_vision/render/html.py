"""Write ``interface.html``: the committed Svelte bundle inlined into a jinja2 template.

Inlining keeps the page one file that runs from ``file://`` (where Chromium refuses module
scripts and ``fetch``) and from any static host. The page's settings, defaults included, arrive
as JSON in a ``<script type="application/json">`` tag, so Python's config is the only source.
A site of several runs (:mod:`.site`) links one shared copy of the bundle instead, with classic
``<script src>`` and ``<link>`` tags, which ``file://`` allows too.
"""

from __future__ import annotations

import html
import json
import os
import re
from importlib import resources
from pathlib import Path
from typing import Any

import jinja2

from ..common.files import atomic_path
from ..config import InterfaceConfig
from ..contract.schema import DATA_DIRNAME
from ..errors import UserError

BUNDLE_FILES = ("app.js", "app.css")
"""The page's bundle: what a site shares between its runs."""
_CONFIG_TAG = re.compile(r'<script type="application/json" id="rlv-config">(.*?)</script>', re.S)
_TITLE_TAG = re.compile(r"<title>(.*?)</title>", re.S)


def _static(name: str) -> str:
    return resources.files(__package__).joinpath("static", name).read_text(encoding="utf-8")


def templates() -> jinja2.Environment:
    """The package's page templates, HTML-escaping every value."""
    return jinja2.Environment(
        loader=jinja2.PackageLoader(__package__, "templates"), autoescape=True, keep_trailing_newline=True
    )


def _script_safe(text: str) -> str:
    """Text that cannot end the ``<script>`` element it is inlined into."""
    return text.replace("</", "<\\/").replace("<!--", "<\\!--")


def render_interface(
    out_dir: str | os.PathLike[str],
    *,
    title: str,
    interface: InterfaceConfig = InterfaceConfig(),
    settings: dict[str, Any] | None = None,
) -> Path:
    """Write ``out_dir/interface.html``; payloads are expected under ``out_dir/data/``.

    The page's starting state comes from ``interface``; ``settings`` adds further entries."""
    config = {"dataPath": f"{DATA_DIRNAME}/", "defaults": interface.page_defaults(), **(settings or {})}
    return write_page(Path(out_dir) / "interface.html", title=title, config=config)


def write_page(path: Path, *, title: str, config: dict[str, Any], bundle: str | None = None) -> Path:
    """Write one page at ``path``: the bundle inlined, or linked from the folder ``bundle`` (a
    relative URL such as ``../assets/``) holding :data:`BUNDLE_FILES`."""
    inline = bundle is None
    page = (
        templates()
        .get_template("interface.html.j2")
        .render(
            title=title,
            config_json=jinja2.utils.markupsafe.Markup(_script_safe(json.dumps(config))),
            app_js=jinja2.utils.markupsafe.Markup(_script_safe(_static("app.js"))) if inline else None,
            app_css=jinja2.utils.markupsafe.Markup(_static("app.css").replace("</", "<\\/")) if inline else None,
            bundle=bundle,
        )
    )
    with atomic_path(path) as temporary:
        Path(temporary).write_text(page, encoding="utf-8")
    return path


def write_bundle(folder: Path) -> None:
    """Copy the bundle's files into ``folder``, for pages written with ``bundle`` pointing there."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in BUNDLE_FILES:
        (folder / name).write_text(_static(name), encoding="utf-8")


def read_page(path: Path) -> tuple[str, dict[str, Any]]:
    """The title and settings of a page this module wrote, to write it again (e.g. for a site)."""
    text = path.read_text(encoding="utf-8")
    config, title = _CONFIG_TAG.search(text), _TITLE_TAG.search(text)
    if config is None or title is None:
        raise UserError(f"{path} is not an interface page of this tool (no settings in it)")
    raw = config.group(1).replace("<\\!--", "<!--")  # undo _script_safe; "<\\/" is JSON for "</"
    return html.unescape(title.group(1)), json.loads(raw)
