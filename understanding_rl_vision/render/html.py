"""Write ``interface.html``: the committed Svelte bundle inlined into a jinja2 template.

Inlining keeps the page one file that runs from ``file://`` (where Chromium refuses module
scripts and ``fetch``) and from any static host. The page's settings, defaults included, arrive
as JSON in a ``<script type="application/json">`` tag, so Python's config is the only source.
"""

from __future__ import annotations

import json
import os
from importlib import resources
from pathlib import Path
from typing import Any

import jinja2

from ..common.files import atomic_path
from ..config import InterfaceConfig
from ..contract.schema import DATA_DIRNAME


def _static(name: str) -> str:
    return resources.files(__package__).joinpath("static", name).read_text(encoding="utf-8")


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
    environment = jinja2.Environment(
        loader=jinja2.PackageLoader(__package__, "templates"), autoescape=True, keep_trailing_newline=True
    )
    config = {"dataPath": f"{DATA_DIRNAME}/", "defaults": interface.page_defaults(), **(settings or {})}
    html = environment.get_template("interface.html.j2").render(
        title=title,
        config_json=jinja2.utils.markupsafe.Markup(_script_safe(json.dumps(config))),
        app_js=jinja2.utils.markupsafe.Markup(_script_safe(_static("app.js"))),
        app_css=jinja2.utils.markupsafe.Markup(_static("app.css").replace("</", "<\\/")),
    )
    path = Path(out_dir) / "interface.html"
    with atomic_path(path) as temporary:
        Path(temporary).write_text(html, encoding="utf-8")
    return path
