"""Shared by the examples: how big to run, and where to write.

``RLV_EXAMPLE_QUICK=1`` runs every example at a tiny size (seconds, for CI); ``RLV_EXAMPLE_OUT``
is the folder the examples write under (default ``examples-output`` in the current directory).
"""

from __future__ import annotations

import os
from pathlib import Path

QUICK = os.environ.get("RLV_EXAMPLE_QUICK") == "1"
"""True when RLV_EXAMPLE_QUICK=1: tiny sizes, to check that an example runs, not to learn from it."""


def output_dir(name: str) -> Path:
    """``$RLV_EXAMPLE_OUT/<name>``: where the example called ``name`` writes (created)."""
    folder = Path(os.environ.get("RLV_EXAMPLE_OUT", "examples-output")) / name
    folder.mkdir(parents=True, exist_ok=True)
    return folder
