"""MkDocs hooks for the user guide (mkdocs.yml loads this file; `make docs` builds the site).

- The repository's ARCHITECTURE.md, RELIABILITY.md and CHANGELOG.md become pages under
  ``project/``, so the built site is whole on a static host.
- A link is resolved from the file's place in the repository, as GitHub resolves it: a guide page's
  ``../ARCHITECTURE.md`` and ARCHITECTURE.md's ``docs/benchmarks.md`` both reach their pages, and
  ``../../examples/video.py`` the site's copy of the example. A link to anything else outside
  docs/ is left for MkDocs to report.
- The examples page (docs/examples.md) gets one section per script and notebook in ``examples/``
  (files starting with ``_`` are helpers and skipped): its docstring, or the notebook's first
  Markdown cell, a link to download it (each is copied into the site) and, for scripts, the source.
  Nothing is listed by hand, so the page follows the folder.
"""

from __future__ import annotations

import ast
import json
import os
import posixpath
import re
import sys
from pathlib import Path
from typing import Any

from mkdocs.structure.files import File, Files

sys.path.insert(0, str(Path(__file__).parent))
from griffe_rst import convert  # the same reST roles as the API reference

ROOT = Path(__file__).resolve().parent.parent
CARRIED = {name: f"project/{name}" for name in ("ARCHITECTURE.md", "RELIABILITY.md", "CHANGELOG.md")}
EXAMPLES = ROOT / "examples"
EXAMPLES_PAGE = "examples.md"
LINK = re.compile(r"(\]\()([^)\s#]+)((?:#[^)\s]*)?\))")


def _examples() -> list[Path]:
    if not EXAMPLES.is_dir():
        return []
    return sorted(
        path
        for path in EXAMPLES.iterdir()
        if path.is_file() and not path.name.startswith("_") and path.suffix in (".py", ".ipynb")
    )


def on_files(files: Files, config: Any) -> Files:
    for name, uri in CARRIED.items():
        files.append(File.generated(config, uri, abs_src_path=str(ROOT / name)))
    for path in _examples():
        files.append(File.generated(config, f"examples/{path.name}", abs_src_path=str(path)))
    return files


def _source_of(page_uri: str, config: Any) -> Path:
    """Where the page's Markdown lives in the repository."""
    for name, uri in CARRIED.items():
        if uri == page_uri:
            return ROOT / name
    return Path(config["docs_dir"]).resolve() / page_uri


def _rewrite_links(markdown: str, page_uri: str, config: Any) -> str:
    docs = Path(config["docs_dir"]).resolve()
    here = _source_of(page_uri, config).parent
    page_dir = posixpath.dirname(page_uri)

    def rewrite(match: re.Match[str]) -> str:
        target = match.group(2)
        if "://" in target or target.startswith(("/", "mailto:")):
            return match.group(0)
        resolved = Path(os.path.normpath(here / target))
        if resolved.is_relative_to(docs):
            uri = resolved.relative_to(docs).as_posix()
        elif resolved.parent == ROOT and resolved.name in CARRIED:
            uri = CARRIED[resolved.name]
        elif resolved in _examples():
            uri = f"examples/{resolved.name}"
        else:
            return match.group(0)  # left for MkDocs to report
        return f"{match.group(1)}{posixpath.relpath(uri, page_dir or '.')}{match.group(3)}"

    return LINK.sub(rewrite, markdown)


def _summary(path: Path) -> str:
    if path.suffix == ".py":
        return convert(ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or "")
    cells = json.loads(path.read_text(encoding="utf-8")).get("cells", [])
    for cell in cells:
        if cell.get("cell_type") == "markdown":
            source = cell.get("source", "")
            return "".join(source) if isinstance(source, list) else str(source)
    return ""


def _examples_section() -> str:
    parts = []
    for path in _examples():
        summary = re.sub(r"^#+\s*(.*)$", r"**\1**\n", _summary(path).strip(), flags=re.MULTILINE)  # no headings
        parts.append(f"## `{path.name}`\n\n{summary}\n\n[Download `{path.name}`](examples/{path.name})\n")
        if path.suffix == ".py":
            source = path.read_text(encoding="utf-8").rstrip("\n")
            fence = "````" if "```" in source else "```"
            indented = "\n".join(f"    {line}" if line else "" for line in source.splitlines())
            parts.append(f'??? example "Source of `{path.name}`"\n\n    {fence}python\n{indented}\n    {fence}\n')
    if not parts:
        return "\n*No examples were found in `examples/` when this site was built.*\n"
    return "\n" + "\n".join(parts)


def on_page_markdown(markdown: str, page: Any, config: Any, files: Files) -> str:
    uri = page.file.src_uri
    markdown = _rewrite_links(markdown, uri, config)
    if uri == EXAMPLES_PAGE:
        markdown += _examples_section()
    return markdown
