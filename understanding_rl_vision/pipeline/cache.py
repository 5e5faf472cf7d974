"""The run's products on disk, one ``.npz`` file each, named by what made them.

A product's name ends in a digest of everything that determines it (the checkpoint's bytes, the
config fields it depends on, the format version), so a changed setting can never return a stale
product and an unchanged one is never computed twice: that is both the cache and the resume.
Files appear atomically, so an interrupted write leaves nothing that looks finished.
"""

from __future__ import annotations

import hashlib
import json
import os
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from ..common.files import atomic_path, remove_stale_temporaries
from ..errors import UserError

PRODUCT_VERSION = 1
"""Bumped when a product's contents change meaning, so older caches are not read (a change to one
kind of job changes its own names instead: see ``ATTRIBUTION_FORMAT`` in :mod:`.plan`)."""


def digest(parts: Any) -> str:
    """A short stable hex digest of JSON-able ``parts``."""
    text = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(f"{PRODUCT_VERSION}:{text}".encode()).hexdigest()[:16]


class Cache:
    """Products under ``root/<checkpoint digest>/``."""

    def __init__(self, root: str | os.PathLike[str], checkpoint_digest: str, rank: int = 0) -> None:
        self.root = Path(root)
        self.directory = self.root / checkpoint_digest[:16]
        self.rank = rank  # recorded in each product as ``made_by_rank``, for diagnosis
        if rank == 0 and self.directory.is_dir():
            remove_stale_temporaries(self.directory)  # files a killed run was writing

    def path(self, name: str) -> Path:
        return self.directory / f"{name}.npz"

    def has(self, name: str) -> bool:
        return self.path(name).is_file()

    def save(self, name: str, arrays: Mapping[str, npt.ArrayLike]) -> Path:
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.path(name)
        with atomic_path(path) as tmp:
            write_npz(tmp, {**arrays, "made_by_rank": np.int32(self.rank)})
        return path

    def load(self, name: str) -> dict[str, np.ndarray]:
        path = self.path(name)
        try:
            with np.load(path, allow_pickle=False) as data:
                return {key: data[key] for key in data.files if key != "made_by_rank"}
        except FileNotFoundError:
            raise UserError(f"{path} is missing from the cache") from None
        except (OSError, ValueError) as exc:  # a damaged file: remove it so a rerun recomputes it
            path.unlink(missing_ok=True)
            raise UserError(f"damaged cache file {path} removed ({exc}); run again to recompute it") from None


def write_npz(path: str | os.PathLike[str], arrays: Mapping[str, npt.ArrayLike]) -> None:
    """``np.savez_compressed`` at zlib level 1 that closes its zip file on a failed write (a full
    disk): numpy's leaves it open, and its late close prints an "Exception ignored" traceback.
    Level 1 shrinks a default run's frames 8x (trajectories: 101 MB to 12 MB in 0.5 s) and payload
    text by a fifth (base85 spends 8 bits on 6.4), so the cache stays under the output it serves."""
    with (
        open(path, "wb") as handle,
        zipfile.ZipFile(handle, "w", zipfile.ZIP_DEFLATED, allowZip64=True, compresslevel=1) as archive,
    ):
        for key, value in arrays.items():
            with archive.open(f"{key}.npy", "w", force_zip64=True) as member:
                np.lib.format.write_array(member, np.asanyarray(value), allow_pickle=False)
