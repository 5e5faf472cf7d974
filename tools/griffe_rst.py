"""A griffe extension for the user guide's API reference (mkdocs.yml loads it): the package's
docstrings are reStructuredText prose with Sphinx roles, which mkdocstrings renders as Markdown.

Each role becomes a code span (``:func:`~understanding_rl_vision.agents.load_agent``` ->
```load_agent```, ``:mod:`.outputs``` -> ```.outputs```, ``:meth:`text <target>``` -> ```text```),
and a paragraph's closing ``::`` (a literal block follows) becomes ``:``. Nothing else changes.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

ROLE = re.compile(r":(?:py:)?(?:func|class|mod|data|meth|attr|obj|exc|const|ref):`([^`]+)`")
LITERAL = re.compile(r"(?<=\S)::$", re.MULTILINE)


def _role(match: re.Match[str]) -> str:
    target = match.group(1).strip()
    titled = re.fullmatch(r"(.+?)\s*<[^>]+>", target)
    if titled:
        text = titled.group(1)
    elif target.startswith("~"):
        text = target[1:].rsplit(".", 1)[-1]
    else:
        text = target
    return f"`{text}`"


def convert(text: str) -> str:
    """The docstring ``text`` with its Sphinx roles as code spans and ``::`` as ``:``."""
    return LITERAL.sub(":", ROLE.sub(_role, text))


class RstRoles(griffe.Extension):
    """Rewrites every docstring as it is loaded, before mkdocstrings parses it."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = convert(obj.docstring.value)
