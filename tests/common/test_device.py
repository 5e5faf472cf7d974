"""The one device check: the name alone when a config is built, availability when it is used."""

import pytest
import torch

from understanding_rl_vision.common.device import check_device, check_device_name
from understanding_rl_vision.errors import ConfigError


@pytest.mark.parametrize("name", ["cpu", "cuda", "cuda:0", "cuda:12", "cpu:0"])
def test_good_names_pass_without_asking_cuda(monkeypatch, name):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: pytest.fail("the check asked CUDA"))
    check_device_name(name)


@pytest.mark.parametrize("name", ["tpu", "mps", "gpu", "cuda:", "cuda:x", "cuda:-1", "", "CPU"])
def test_bad_names_are_one_message(name):
    with pytest.raises(ConfigError, match=f"unknown device {name!r}; use cpu, cuda or cuda:N"):
        check_device_name(name)
    with pytest.raises(ConfigError, match="unknown device"):
        check_device(name)


def test_cpu_is_a_torch_device():
    assert check_device("cpu") == torch.device("cpu")


def test_cuda_without_a_gpu_says_so(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    message = "device 'cuda' asked for, but torch sees no CUDA GPU here; use --device cpu"
    with pytest.raises(ConfigError, match=message):
        check_device("cuda")


def test_a_missing_gpu_index_says_how_many_there_are(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert check_device("cuda:1") == torch.device("cuda:1")
    with pytest.raises(ConfigError, match=r"device 'cuda:7' does not exist: 2 GPU\(s\) visible"):
        check_device("cuda:7")


def test_training_does_not_import_the_public_api():
    """rl_clarity imports training; training importing it back, even lazily, would be a cycle."""
    from pathlib import Path

    from understanding_rl_vision import training

    for path in Path(training.__file__).parent.glob("*.py"):
        assert "rl_clarity" not in path.read_text(), path.name
