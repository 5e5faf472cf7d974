"""Every registered method, through the registry alone (as the pipeline will call them): the shape
its declaration promises, a map that peaks where the output looks, and no hook left behind."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from understanding_rl_vision.attribution import ExplainedModel, Output, hook_count
from understanding_rl_vision.attribution.methods import BASIS_METHOD, REGISTRY, TREE_FIELDS, TreeMethod, method_class
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


OUTPUT_METHODS = sorted(name for name, cls in REGISTRY.items() if cls.info.explains == "outputs")
ATTENTION_METHODS = sorted(name for name, cls in REGISTRY.items() if cls.info.explains == "attention")


class AttendsToTheSquare(nn.Module):
    """An attention network: conv features, a softmax mask over locations scored higher where the
    features are bright (so inside the square), and the features times the mask."""

    attention_layer = "mask"
    attended_layer = "attended"

    def __init__(self, fail: bool = False) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 2, kernel_size=3, padding=1, bias=False)
        self.features = nn.ReLU()
        self.score = nn.Conv2d(2, 1, kernel_size=1, bias=False)
        with torch.no_grad():
            self.conv.weight.fill_(0.1)
            self.score.weight.fill_(4.0)
        self.mask = nn.Identity()
        self.attended = nn.Identity()
        self.fail = fail

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.features(self.conv(x))
        if self.fail and isinstance(x, torch.Tensor):  # a real pass, not the tree's symbolic trace
            raise UserError("a failure inside the network")
        scores = self.score(features)
        mask = self.mask(scores.flatten(2).softmax(dim=-1).reshape(scores.shape))
        attended = self.attended(features * mask).sum(dim=(1, 2, 3))
        return torch.stack([attended, -attended, attended], dim=1)  # value, one logit, attention


@pytest.mark.parametrize("name", ATTENTION_METHODS)
def test_each_attention_method_looks_where_the_mask_does(name):
    model = AttendsToTheSquare()
    explained_model = ExplainedModel(model, model, ("value", "logit:A", "attention"))
    method = method_class(name)()
    result = method.attribute(explained_model, frames(), explained_model.outputs(["attention"]))
    assert result.dtype == torch.float32 and result.shape[:2] == (1, 2)
    if method.info.produces == "map":
        assert result.shape == (1, 2, SIZE, SIZE) and torch.allclose(result.sum(dim=(2, 3)), torch.ones(1, 2))
        centres = [divmod(int(frame.argmax()), SIZE) for frame in result[0]]
    else:
        assert method.info.produces == "tree" and result.shape[-1] == len(TREE_FIELDS)
        roots = result[0, :, 0]  # the strongest root of each frame; its box's centre in pixels
        top, left, bottom, right = (roots[:, TREE_FIELDS.index(edge)] for edge in ("top", "left", "bottom", "right"))
        centres = [(int((t + b) / 2 * SIZE), int((le + r) / 2 * SIZE)) for t, le, b, r in zip(top, left, bottom, right)]
    for peak in centres:
        assert SQUARE[0].start <= peak[0] < SQUARE[0].stop and SQUARE[1].start <= peak[1] < SQUARE[1].stop, name
    assert hook_count(model) == 0


@pytest.mark.parametrize("name", ATTENTION_METHODS)
def test_a_failure_inside_an_attention_method_leaves_no_hook(name):
    model = AttendsToTheSquare(fail=True)
    with pytest.raises(UserError, match="a failure inside the network"):
        method_class(name)().attribute(ExplainedModel(model, model, ("value", "logit:A", "attention")), frames(), [])
    assert hook_count(model) == 0 and all(parameter.requires_grad for parameter in model.parameters())


@pytest.mark.parametrize("name", OUTPUT_METHODS)
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


@pytest.mark.parametrize("name", OUTPUT_METHODS)
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
        "attention",
        "attention-tree",
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
        assert cls.info.attaches in ("layer", "input") and cls.info.produces in ("channels", "map", "tree")
        assert (cls.info.produces == "tree") == issubclass(cls, TreeMethod)
    with pytest.raises(
        UserError, match="unknown method 'gradcamm'; valid: attention, attention-tree, gradcam, gradcam"
    ):
        method_class("gradcamm")
