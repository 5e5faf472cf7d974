"""What a file from another library gives before an environment completes it."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..base import Preprocessing
from .layouts import Recognised


@dataclass(frozen=True)
class Foreign:
    """A file from another library, read as far as it goes without an environment."""

    format: str
    path: Path
    recognised: Recognised | None  # None: a TorchScript module whose weights match no layout
    scripted: torch.jit.ScriptModule | None = None
    observation_shape: tuple[int, int, int] | None = None  # (H, W, C) when the file says
    gamma: float | None = None
    lam: float | None = None
    preprocessing: Preprocessing = Preprocessing()  # frozen: one shared default is safe
    env: str = ""  # from a TorchScript's metadata JSON
    details: dict[str, Any] = field(default_factory=dict)  # for `inspect`
