"""Every registered method, through the registry alone (as the pipeline will call them): the shape
its declaration promises, a map that peaks where the output looks, and no hook left behind."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from understanding_rl_vision.attribution import ExplainedModel, Output, hook_count
from understanding_rl_vision.attribution.methods import BASIS_METHOD, REGISTRY, method_class
from understanding_rl_vision.errors import UserError

SIZE, SQUARE = 16, (slice(4, 8), slice(9, 13))
TOY_SETTINGS = {"perturbation": {"perturbation_radius": 2.0, "perturbation_stride": 2}}
"""Settings scaled to the 16 px toy frame: perturbation's default 5 px disc, blurred with sigma 5, reaches
25 px from its centre, so every mask covers the whole frame and the map is nearly flat."""


class ReadsTheSquare(nn.Module):
    """Conv features of the frame; the output reads them only inside the square."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 2, kernel_size=3, padding=1, bias=False)
        with torch.no_grad():
            self.conv.weight.fill_(0.1)
        self.features = nn.ReLU()
        mask = torch.zeros(SIZE, SIZE)
        mask[SQUARE] = 1.0
        self.register_buffer("mask", mask)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        read = (self.features(self.conv(x)) * self.mask).sum(dim=(2, 3))  # (N, 2)
        return torch.stack([read.sum(dim=1), read[:, 0] - read[:, 1]], dim=1)  # value, one logit


def explained() -> ExplainedModel:
    model = ReadsTheSquare()
    return ExplainedModel(model, model, ("value", "logit:A"))


def frames() -> torch.Tensor:
    generator = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, SIZE, SIZE, generator=generator) * 0.2
    x[:, :, SQUARE[0], SQUARE[1]] += 0.8  # bright inside the square
    return x


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_each_method_keeps_its_declaration_and_looks_at_the_square(name):
    model, inputs = explained(), frames()
    method = method_class(name)(**TOY_SETTINGS.get(name, {}))
    layer = "features" if method.info.attaches == "layer" else None
    result = method.attribute(model, inputs, model.outputs(["value"]), layer)
    assert result.dtype == torch.float32 and result.device.type == "cpu"
    if method.info.produces == "map":
        assert result.shape == (1, 2, SIZE, SIZE)
        heat = result[0].abs()
    else:
        assert result.shape == (1, 2, 2, SIZE, SIZE)
        heat = result[0].sum(dim=1).abs()
    for frame in heat:
        peak = divmod(int(frame.argmax()), SIZE)
        assert SQUARE[0].start <= peak[0] < SQUARE[0].stop and SQUARE[1].start <= peak[1] < SQUARE[1].stop, name
    assert hook_count(model.model) == 0
    assert method.settings().get("method", name if name == BASIS_METHOD else None) == name  # ig: format-1 keys


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_a_failure_inside_the_method_leaves_no_hook(name):
    model = explained()
    method = method_class(name)()
    layer = "features" if method.info.attaches == "layer" else None
    wrong = Output("three entries", (1.0, 0.0, 0.0))  # the model has two
    with pytest.raises(UserError, match="the chosen outputs weigh"):
        method.attribute(model, frames(), [wrong], layer)
    assert hook_count(model.model) == 0
    assert all(parameter.requires_grad for parameter in model.model.parameters())


def test_every_method_declares_what_the_pipeline_dispatches_on():
    assert sorted(REGISTRY) == [
        "gradcam",
        "gradcam++",
        "gradcam-channels",
        "gradient",
        "gradient-x-input",
        "hirescam",
        "ig",
        "perturbation",
        "smoothgrad",
        "smoothgrad-sq",
        "vargrad",
    ]
    for name, cls in REGISTRY.items():
        assert cls.info.name == name and cls.info.title and cls.info.citation and cls.info.summary
        assert cls.info.attaches in ("layer", "input") and cls.info.produces in ("channels", "map")
    with pytest.raises(UserError, match="unknown method 'gradcamm'; valid: gradcam, gradcam"):
        method_class("gradcamm")
