"""The one device check, so run, demo, train and evaluate accept the same names and refuse
them with the same messages. The name check asks nothing of CUDA, so configs can refuse a typo
when they are built; the full check runs when the device is about to be used."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch

from ..errors import ConfigError


def check_device_name(name: str) -> None:
    """Refuse anything but cpu, cuda or cuda:N, without querying CUDA."""
    kind, colon, index = str(name).partition(":")
    if kind not in ("cpu", "cuda") or (colon and not index.isdigit()):
        raise ConfigError(f"unknown device {name!r}; use cpu, cuda or cuda:N")


def check_device(name: str) -> torch.device:
    """``name`` as a device torch can use here, else one clear error."""
    check_device_name(name)
    device = torch.device(name)
    if device.type != "cuda":
        return device
    if not torch.cuda.is_available():
        raise ConfigError(f"device {name!r} asked for, but torch sees no CUDA GPU here; use --device cpu")
    if (device.index or 0) >= (count := torch.cuda.device_count()):
        raise ConfigError(f"device {name!r} does not exist: {count} GPU(s) visible")
    return device


@contextmanager
def one_thread() -> Iterator[None]:
    """Run the block's torch work on one thread. CPU results depend on how many threads split a
    reduction (on the bundled agent, 1 and 2 threads give values 1e-6 apart, enough to move
    quantised maps by a step), and a product must be the same bytes whichever process computes
    it, alone or as one of N ranks. A run uses cores through lanes and MPI ranks instead
    (:mod:`..pipeline.runner`); ablation plays on one thread for the same reason, and because
    spinning threads slowed its play 15x on two busy cores."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)
