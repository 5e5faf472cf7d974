"""Caps on what a checkpoint may declare, checked before anything is allocated.

A file's headers say how big its tensors, its observations and its network are, and a damaged
or hostile file can say anything: a 2 MB zip whose entry inflates to 2 GiB, an observation
shape that asks for 120 GB. Every cap here is far above any real Atari or Procgen agent (whose
weights are at most a few hundred MB) and far below what would exhaust a machine, so a file
past one is refused with one line instead of being believed.
"""

from __future__ import annotations

import json
import math
from typing import Any

from ..errors import CheckpointError

MIB = 1 << 20
MAX_WEIGHT_BYTES = 1024 * MIB
"""All the tensors of one file. The Nature CNN is 7 MB and the IMPALA CNN 2.5 MB in float32;
1 GiB leaves room for networks 100x larger and stops a file declaring terabytes."""
MAX_PARAMETERS = MAX_WEIGHT_BYTES // 4
"""A rebuilt network's parameters: what MAX_WEIGHT_BYTES holds in float32."""
MAX_ACTIVATION_VALUES = 64 * MIB
"""Values in one layer's output for one observation (256 MB in float32). The IMPALA CNN on
Procgen's full-resolution 512x512 frames needs 4M; runs keep activations of thousands of
observations, so a network past this could not be explained anyway."""
MAX_OBSERVATION_SIDE = 4096
MAX_OBSERVATION_CHANNELS = 256
MAX_OBSERVATION_VALUES = 4 * MIB
"""Bytes in one uint8 observation: Atari's 84x84x4 is 28 KB, Procgen full resolution 768 KB."""
MAX_ACTIONS = 4096
"""Atari's full action space has 18 actions and Procgen 15."""
MAX_TENSORS = 10_000
"""Tensors in one file; the CNN agents have under a hundred."""
MAX_HEADER_BYTES = 16 * MIB
"""A safetensors header (a JSON index of the tensors); ours are a few KB."""
MAX_JSON_BYTES = 64 * MIB
"""JSON metadata: Stable-Baselines3's ``data`` entry, with its base64-pickled last observations
for every environment, is a few MB at most."""
MAX_JSON_VALUES = 1_000_000
"""Lists, objects and separators in one JSON document (each becomes a Python object of 50-100
bytes); real metadata has a few hundred. Big payloads in SB3's data are single base64 strings."""
MAX_SMALL_ENTRY_BYTES = MIB
"""Small zip entries read whole: version strings, TorchScript sidecars."""
MAX_PICKLE_BYTES = 16 * MIB
"""The pickle of a torch.save'd state dict (names, shapes, strides; the data lies beside it):
about 150 bytes a tensor, so 1.5 MB for MAX_TENSORS."""
MAX_PICKLE_OPS = 1_000_000
"""Opcodes in that pickle. Each can become a Python object of up to ~100 bytes, so 16 MiB of
``EMPTY_LIST APPEND`` pairs cost the unpickler 570 MB; a state dict needs ~20 a tensor, and a
million still admits a training log of a million numbers saved beside it."""
MAX_ZIP_ENTRIES = 100_000
BOMB_MIN_BYTES = 16 * MIB
MAX_COMPRESSION_RATIO = 20
"""An entry inflating past BOMB_MIN_BYTES may grow at most this much: trained float weights
compress by under 2x, a run of zeros by 1000x (a zip bomb)."""


def load_json(raw: bytes | str, what: str, limit: int = MAX_JSON_BYTES) -> Any:
    """Parse JSON that a file supplied, with its size and object count bounded first."""
    if len(raw) > limit:
        raise CheckpointError(f"{what} is {len(raw):,} bytes of JSON, over the {limit:,} this tool reads")
    probe = raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else raw
    values = probe.count(b"[") + probe.count(b"{") + probe.count(b",")
    if values > MAX_JSON_VALUES:
        raise CheckpointError(f"{what} holds over {MAX_JSON_VALUES:,} JSON values; real metadata has a few hundred")
    try:
        return json.loads(raw)
    except (ValueError, RecursionError) as exc:  # RecursionError: nesting thousands deep
        reason = "nested too deeply" if isinstance(exc, RecursionError) else str(exc).splitlines()[0]
        raise CheckpointError(f"corrupt JSON in {what}: {reason}") from None


def is_int(value: Any) -> bool:
    """A JSON integer (``True`` is an int to Python, never to us)."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def check_observation_shape(shape: Any, what: str) -> tuple[int, int, int]:
    """(H, W, C) of positive integers within the caps, or one error line naming ``what``."""
    if not isinstance(shape, (list, tuple)) or len(shape) != 3 or not all(is_int(d) for d in shape):
        raise CheckpointError(f"{what}: observation shape {_show(shape)} is not three integers (H, W, C)")
    height, width, channels = shape
    if min(shape) < 1:
        raise CheckpointError(f"{what}: observation shape {tuple(shape)} has a size below 1")
    if (
        max(height, width) > MAX_OBSERVATION_SIDE
        or channels > MAX_OBSERVATION_CHANNELS
        or (height * width * channels > MAX_OBSERVATION_VALUES)
    ):
        raise CheckpointError(
            f"{what}: observation shape {tuple(shape)} is implausibly large (at most "
            f"{MAX_OBSERVATION_SIDE} pixels a side, {MAX_OBSERVATION_CHANNELS} channels and "
            f"{MAX_OBSERVATION_VALUES:,} values)"
        )
    return (height, width, channels)


def check_num_actions(count: Any, what: str) -> int:
    if not is_int(count) or not 1 <= count <= MAX_ACTIONS:
        raise CheckpointError(f"{what}: {_show(count)} actions is not a count from 1 to {MAX_ACTIONS}")
    return count


def check_fraction(value: Any, name: str, what: str) -> float:
    """A discount-like setting: a finite number in [0, 1]."""
    if not is_number(value) or not 0.0 <= value <= 1.0:
        raise CheckpointError(f"{what}: {name} must be a number from 0 to 1, not {_show(value)}")
    return float(value)


def check_scale(value: Any, what: str) -> float:
    """The factor observations are multiplied by: finite and positive."""
    if not is_number(value) or value <= 0:
        raise CheckpointError(f"{what}: the input scale must be a positive number, not {_show(value)}")
    return float(value)


def _show(value: Any) -> str:
    """A value from a file, shortened to fit in one error line."""
    text = repr(value).replace("\n", " ")
    return text if len(text) <= 60 else text[:57] + "..."
