"""A static site of several finished runs: ``index.html`` lists them, and each run's page sits in a
folder of its own beside its data, every page linking one shared copy of the bundle.

Users compare checkpoints of one training run (the Distill article did), and a static host such as
GitHub Pages serves a folder as it is. So the site is plain files: ``index.html``, ``assets/`` (the
bundle), and per run ``<slug>/interface.html``, ``<slug>/data/`` (copied) and
``<slug>/thumbnail.png``. Every link is relative, so it works from ``file://`` too. This module
writes into a folder it is given; :func:`understanding_rl_vision.rl_clarity.site` publishes that
folder like a run's output: built aside, swapped into place, never over files this tool did not write.
"""

from __future__ import annotations

import datetime
import re
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ..contract.reader import read_manifest, read_payload, read_sprite
from ..contract.schema import DATA_DIRNAME, Manifest, trajectory_key
from ..errors import UserError
from .html import read_page, templates, write_bundle, write_page

ASSETS_DIRNAME = "assets"
PAGE_NAME = "interface.html"
THUMBNAIL_NAME = "thumbnail.png"
THUMBNAIL_WIDTH = 160
"""Pixels across a run's thumbnail: its middle frame of the first trajectory, scaled by whole steps."""


@dataclass(frozen=True)
class SiteRun:
    """One run as the index lists it."""

    slug: str  # its folder in the site
    title: str
    agent: str
    env_id: str
    methods: tuple[str, ...]  # titles, in the page's menu order
    trajectories: int
    frames: int  # over all played trajectories
    written: datetime.datetime  # when its data was written (UTC)
    size_bytes: int  # its data and page as copied into the site

    @property
    def size(self) -> str:
        return f"{self.size_bytes / 1e6:.1f} MB" if self.size_bytes >= 1e5 else f"{self.size_bytes / 1e3:.0f} KB"


def check_runs(directories: Sequence[Path], site: Path) -> None:
    """One error for anything in ``directories`` that is not a finished run a site can copy into ``site``."""
    for directory in directories:
        check_run(directory)
        real = directory.resolve()
        if site.resolve() in (real, *real.parents) or real in site.resolve().parents:
            raise UserError(f"the site folder {site} and the run {directory} must not contain each other")
    if len({d.resolve() for d in directories}) < len(directories):
        raise UserError("a run folder is given twice")


def check_run(directory: Path) -> Manifest:
    """The manifest of a finished run's output folder; one error for anything else."""
    if not (directory / PAGE_NAME).is_file() or not (directory / DATA_DIRNAME / "manifest.js").is_file():
        raise UserError(f"{directory} is not a finished run: it needs {PAGE_NAME} and {DATA_DIRNAME}/manifest.js")
    return read_manifest(directory / DATA_DIRNAME)


def slugs(directories: Sequence[Path]) -> list[str]:
    """A folder name per run: its own name made URL-safe, numbered where two would clash."""
    taken: set[str] = {ASSETS_DIRNAME}
    out = []
    for directory in directories:
        base = re.sub(r"[^A-Za-z0-9._-]+", "-", directory.name).strip("-.") or "run"
        slug, n = base, 2
        while slug.lower() in taken:
            slug, n = f"{base}-{n}", n + 1
        taken.add(slug.lower())
        out.append(slug)
    return out


def thumbnail(data: Path, manifest: Manifest) -> Image.Image:
    """The middle frame of the first trajectory, enlarged by whole steps (pixel art stays sharp)."""
    trajectory = read_payload(data, trajectory_key(0))
    frame = read_sprite(data, trajectory.frames, manifest.trajectory_lengths[0] // 2)[..., :3]
    scale = max(1, THUMBNAIL_WIDTH // frame.shape[1])
    return Image.fromarray(np.ascontiguousarray(frame)).resize(
        (frame.shape[1] * scale, frame.shape[0] * scale), Image.Resampling.NEAREST
    )


def copy_run(source: Path, destination: Path, slug: str) -> SiteRun:
    """Copy one run into ``destination`` with its page linking the shared bundle; what the index says of it."""
    manifest = check_run(source)
    title, config = read_page(source / PAGE_NAME)
    shutil.copytree(source / DATA_DIRNAME, destination / DATA_DIRNAME)
    write_page(destination / PAGE_NAME, title=title, config=config, bundle=f"../{ASSETS_DIRNAME}/")
    thumbnail(destination / DATA_DIRNAME, manifest).save(destination / THUMBNAIL_NAME)
    played = len(manifest.trajectory_lengths) - (len(manifest.states.targets) if manifest.states else 0)
    written = (source / DATA_DIRNAME / "manifest.js").stat().st_mtime
    return SiteRun(
        slug=slug,
        title=title,
        agent=manifest.agent,
        env_id=manifest.env_id,
        methods=tuple(m.title for m in manifest.all_methods),
        trajectories=played,
        frames=sum(manifest.trajectory_lengths[:played]),
        written=datetime.datetime.fromtimestamp(written, datetime.timezone.utc),
        size_bytes=sum(f.stat().st_size for f in destination.rglob("*") if f.is_file()),
    )


def render_index(folder: Path, runs: Sequence[SiteRun], title: str) -> Path:
    page = (
        templates()
        .get_template("site.html.j2")
        .render(title=title, runs=runs, page=PAGE_NAME, thumbnail=THUMBNAIL_NAME)
    )
    path = folder / "index.html"
    path.write_text(page, encoding="utf-8")
    return path


def write_site(folder: Path, run_dirs: Sequence[Path], title: str) -> list[SiteRun]:
    """Write the site of ``run_dirs`` (checked by :func:`check_runs`) into the empty ``folder``;
    returns what its index lists."""
    write_bundle(folder / ASSETS_DIRNAME)
    runs = [copy_run(source, folder / slug, slug) for source, slug in zip(run_dirs, slugs(run_dirs), strict=True)]
    render_index(folder, runs, title)
    return runs
