"""A tiny finished run of the bundled agent (the shared small settings), whose manifest holds its
features' directions."""

import pytest

from understanding_rl_vision import rl_clarity


@pytest.fixture(scope="session")
def tiny_run(checkpoint, small, tmp_path_factory):
    """The output folder of a run that takes seconds: layers 2b and 3c (the default), 3 features each."""
    out = tmp_path_factory.mktemp("run") / "out"
    rl_clarity.run(checkpoint, out, progress=False, **small)
    return out


@pytest.fixture(scope="session")
def tiny_settings(small):
    """The tiny run's settings (a fresh dict)."""
    return dict(small)
