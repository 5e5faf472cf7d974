"""Receptive fields for the attention tree (seed 002): hand-built networks, and the gradient support
of real agents' layers."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn
from tree_nets import ACTIONS, HandBuilt  # the hand-built network whose tree test_tree computes by hand

from understanding_rl_vision.agents import make_agent
from understanding_rl_vision.attribution.hooks import capture
from understanding_rl_vision.attribution.receptive_fields import receptive_fields
from understanding_rl_vision.errors import UserError

# --------------------------------------------------------------------------------------------------
# The hand-built network of test_tree
# --------------------------------------------------------------------------------------------------


def test_hand_built_receptive_fields():
    model = HandBuilt()
    relu1 = receptive_fields(model, "relu1", (10, 10))
    relu2 = receptive_fields(model, "relu2", (10, 10))
    assert (relu1.jump, relu1.size, relu1.offset) == ((2, 2), (2, 2), (0, 0))
    assert (relu2.jump, relu2.size, relu2.offset) == ((2, 2), (6, 6), (0, 0))
    mask = receptive_fields(model, "mask", (10, 10))
    assert (mask.jump, mask.size, mask.offset) == (relu2.jump, relu2.size, relu2.offset)  # the softmax keeps it
    assert relu2.grid(3, 3)[2, 1].tolist() == [4, 2, 10, 8]


def test_padding_and_dilation_are_clipped_to_the_input():
    class Padded(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(1, 1, 3, padding=2, dilation=2)
            self.pool = nn.MaxPool2d(3, stride=2, padding=1)

        def forward(self, x):
            return self.pool(self.conv(x))

    field = receptive_fields(Padded(), "pool", (9, 9))
    # conv: 5 pixels wide (dilated 3x3), starting 2 before its cell; pool: 3 conv cells from 1 before, stride 2
    assert (field.jump, field.size, field.offset) == ((2, 2), (7, 7), (-3, -3))
    assert field.boxes(torch.tensor([0, 4]), torch.tensor([1, 0])).tolist() == [[0, 0, 4, 6], [5, 0, 9, 4]]


# --------------------------------------------------------------------------------------------------
# Receptive fields against gradients
# --------------------------------------------------------------------------------------------------


def positive_linear_copy(model: nn.Module) -> nn.Module:
    """A copy in which every gradient is a sum of positive terms, so its support is the true field:
    positive weights and biases, and average instead of max pooling (same geometry)."""
    model = copy.deepcopy(model).eval()
    for name, module in list(model.named_modules()):
        if isinstance(module, nn.Conv2d):
            with torch.no_grad():
                module.weight.abs_().add_(0.01)
                if module.bias is not None:
                    module.bias.fill_(0.1)
        if isinstance(module, nn.MaxPool2d):
            parent, _, attribute = name.rpartition(".")
            pool = nn.AvgPool2d(module.kernel_size, module.stride, module.padding, count_include_pad=True)
            setattr(model.get_submodule(parent) if parent else model, attribute, pool)
    return model


def gradient_support(model: nn.Module, layer: str, shape: tuple[int, int, int], cells) -> list[list[int]]:
    """For each cell, the bounding box (top, left, bottom, right) of the input pixels with a nonzero
    gradient of the layer's channel sum there; asserts the support fills its box."""
    channels, height, width = shape
    frame = torch.ones(1, channels, height, width, requires_grad=True)
    with capture(model, [layer]) as captured:
        model(frame)
    out = captured[layer]
    boxes = []
    for y, x in cells:
        (grad,) = torch.autograd.grad(out[0, :, y, x].sum(), frame, retain_graph=True)
        support = grad[0].abs().sum(0) > 0
        rows, cols = support.any(1).nonzero()[:, 0], support.any(0).nonzero()[:, 0]
        box = [int(rows[0]), int(cols[0]), int(rows[-1]) + 1, int(cols[-1]) + 1]
        assert support[box[0] : box[2], box[1] : box[3]].all()  # a full rectangle, no holes
        boxes.append(box)
    return boxes


def sample_cells(height: int, width: int) -> list[tuple[int, int]]:
    return sorted({(0, 0), (0, width - 1), (height - 1, 0), (height - 1, width - 1), (height // 2, width // 3), (1, 2)})


@pytest.mark.parametrize(
    ("architecture", "shape", "options", "layers"),
    [
        ("attention", (84, 84, 4), {}, ["relu1", "relu2", "relu3"]),
        ("clear", (64, 64, 3), {}, ["relu2b", "pool2", "relu4a"]),  # L2 pooling: a functional avg_pool2d
        ("fls", (84, 84, 4), {}, ["relu3", "attention.mask"]),  # the gate's two 3x3 convs widen the mask's field
        (
            "attention",
            (64, 64, 3),
            {"trunk": "impala"},
            ["stacks.0.pool", "stacks.0.res0", "stacks.1.res1", "relu"],
        ),
    ],
)
def test_receptive_fields_equal_the_gradient_support(architecture, shape, options, layers):
    agent = make_agent(architecture, None, shape, ACTIONS, seed=0, **options)
    copy_ = positive_linear_copy(agent.model)
    height, width, channels = shape
    with capture(agent.model, layers) as captured, torch.no_grad():
        agent.model(torch.zeros(1, channels, height, width))
    for layer in layers:
        map_height, map_width = captured[layer].shape[2:]
        cells = sample_cells(map_height, map_width)
        field = receptive_fields(agent.model, layer, (height, width))
        computed = field.boxes(torch.tensor([y for y, _ in cells]), torch.tensor([x for _, x in cells])).tolist()
        assert computed == gradient_support(copy_, layer, (channels, height, width), cells), layer


def test_attention_mask_keeps_the_trunk_field_by_convention():
    agent = make_agent("attention", None, (84, 84, 4), ACTIONS, seed=0)
    relu3 = receptive_fields(agent.model, "relu3", (84, 84))
    mask = receptive_fields(agent.model, "attention.mask", (84, 84))
    assert (relu3.jump, relu3.size, relu3.offset) == ((8, 8), (36, 36), (0, 0))  # Nature's 36-pixel field
    assert (mask.jump, mask.size, mask.offset) == (relu3.jump, relu3.size, relu3.offset)


def test_functional_windows_equal_their_modules():
    class Modules(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(2, 3, 5, stride=2, padding=1, dilation=2)
            self.pool = nn.MaxPool2d(3, stride=2, padding=1)
            self.average = nn.AvgPool2d(2)
            self.pad = nn.ZeroPad2d((1, 0, 2, 0))
            self.same = nn.Conv2d(3, 3, 4, padding="same")

        def forward(self, x):
            return self.same(self.pad(self.average(self.pool(self.conv(x)))))

    class Functions(Modules):
        def forward(self, x):
            x = nn.functional.conv2d(x, self.conv.weight, self.conv.bias, 2, 1, 2)
            x = nn.functional.max_pool2d(x, 3, 2, 1)
            x = nn.functional.avg_pool2d(x, 2)
            x = nn.functional.pad(x, (1, 0, 2, 0))
            return self.finish(x)

        def finish(self, x):
            return nn.functional.conv2d(x, self.same.weight, self.same.bias, padding="same")

    class Named(Functions):
        def __init__(self):
            super().__init__()
            self.out = nn.Identity()

        def forward(self, x):
            return self.out(super().forward(x))

    expected = receptive_fields(Modules(), "same", (40, 40))
    computed = receptive_fields(Named(), "out", (40, 40))
    assert (computed.jump, computed.size, computed.offset) == (expected.jump, expected.size, expected.offset)
    # size 9 (dilated 5), start -1, jump 2 -> pool: 9 + 2 * 2 = 13, -1 - 2 = -3, 4 -> average: 13 + 4 = 17,
    # -3, 8 -> pad: start 2 rows and 1 column earlier -> "same" 4x4: 17 + 3 * 8 = 41, one cell earlier
    assert (expected.jump, expected.size, expected.offset) == ((8, 8), (41, 41), (-3 - 16 - 8, -3 - 8 - 8))


def test_unmodelled_geometry_is_an_error():
    class Upsampling(nn.Module):
        def __init__(self):
            super().__init__()
            self.up = nn.Upsample(scale_factor=2)
            self.conv = nn.Conv2d(1, 1, 3)

        def forward(self, x):
            return self.conv(self.up(x))

    with pytest.raises(UserError, match="Upsample"):
        receptive_fields(Upsampling(), "conv", (8, 8))
    with pytest.raises(UserError, match="unknown layer"):
        receptive_fields(Upsampling(), "nope", (8, 8))
