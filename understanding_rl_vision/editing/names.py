"""The feature-names file: the names a person gave a run's NMF features in the page's legend.

The page downloads it; ``run --feature-names FILE`` shows the names in the legend, and ``edit``
accepts them for ``--remove-feature``. The format, written by the page's JS and by
:func:`write_feature_names` alike::

    {"format": "understanding-rl-vision-feature-names", "version": 1, "agent": "<display name>",
     "layers": {"2b": {"1": "coin", "3": "buzzsaw"}}}

Layers are keyed by label (or dotted module name), features by their 1-based number as the
legend shows them. ``agent`` is informative only: the manifest's agent is a display name.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..common.files import atomic_path
from ..errors import UserError

FORMAT = "understanding-rl-vision-feature-names"
VERSION = 1
MAX_NAME = 40
"""Characters in a name at most: the legend has room for a short word or two."""
MAX_FILE_BYTES = 1 << 20
"""A names file larger than this is not one the page wrote."""


def read_feature_names(path: str | os.PathLike[str]) -> dict[str, dict[int, str]]:
    """Layer -> feature number (1-based) -> name, every malformed case a one-line error."""
    path = Path(path)
    what = f"feature-names file {path}"
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            raise UserError(f"{what} is over {MAX_FILE_BYTES // 1024} KiB; the page writes a few hundred bytes")
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"no {what}") from None
    except IsADirectoryError:
        raise UserError(f"{what} is a directory") from None
    except UnicodeDecodeError:
        raise UserError(f"{what} is not UTF-8 text") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UserError(f"{what} is not JSON: {exc.msg} at line {exc.lineno}") from None
    return parse_feature_names(data, what)


def parse_feature_names(data: Any, what: str = "feature names") -> dict[str, dict[int, str]]:
    """The names in already decoded JSON ``data`` (see the module docstring)."""
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise UserError(f'{what} is not a feature-names file (expected "format": "{FORMAT}")')
    if data.get("version") != VERSION:
        raise UserError(f"{what} has version {data.get('version')!r}; this package reads version {VERSION}")
    layers = data.get("layers")
    if not isinstance(layers, dict):
        raise UserError(f'{what}: "layers" must be an object of layer -> {{feature number: name}}')
    found: dict[str, dict[int, str]] = {}
    for layer, names in layers.items():
        if not isinstance(names, dict):
            raise UserError(f"{what}: layer {layer!r} must map feature numbers to names")
        found[layer] = {}
        for number, name in names.items():
            found[layer][_feature_number(number, layer, what)] = check_name(name, f"{what}: layer {layer!r}")
        seen: dict[str, int] = {}
        for number, name in sorted(found[layer].items()):
            if name in seen:
                raise UserError(f"{what}: layer {layer!r} names features {seen[name]} and {number} both {name!r}")
            seen[name] = number
    return found


def check_name(name: Any, where: str) -> str:
    """A feature name: a non-empty string of at most :data:`MAX_NAME` characters, one line."""
    if not isinstance(name, str):
        raise UserError(f"{where}: a feature name must be a string, got {name!r:.40}")
    stripped = name.strip()
    if not stripped:
        raise UserError(f"{where}: a feature name is empty")
    if len(stripped) > MAX_NAME:
        raise UserError(f"{where}: feature name {stripped[:20]!r}... is over {MAX_NAME} characters")
    if any(ch in stripped for ch in "\n\r\t"):
        raise UserError(f"{where}: feature name {stripped!r} spans lines")
    return stripped


def feature_label(index: int, name: str) -> str:
    """``feature 3`` or ``feature 3 (coin)`` for feature ``index`` (0-based): the number always,
    the name where one was given."""
    number = f"feature {index + 1}"
    return number if name == number else f"{number} ({name})"


def _feature_number(text: Any, layer: str, what: str) -> int:
    if not (isinstance(text, str) and text.isdecimal() and text.isascii() and int(text) >= 1):
        raise UserError(f"{what}: layer {layer!r} has feature {text!r}; features are numbered 1, 2, ...")
    return int(text)


def write_feature_names(path: str | os.PathLike[str], names: Mapping[str, Mapping[int, str]], agent: str = "") -> Path:
    """Write ``names`` (layer -> 1-based feature number -> name) as the page would, atomically;
    they are checked as :func:`read_feature_names` checks them, so what is written reads back."""
    data = {
        "format": FORMAT,
        "version": VERSION,
        "agent": agent,
        "layers": {
            str(layer): {str(number): name for number, name in sorted(features.items())}
            for layer, features in names.items()
        },
    }
    parse_feature_names(data, "the feature names to write")
    path = Path(path)
    with atomic_path(path) as tmp_name:
        Path(tmp_name).write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return path
