"""Layer discovery, labels and the errors for layers that cannot be attributed."""

import pytest
import torch

from understanding_rl_vision.agents.architectures import ClearCNN, ImpalaCNN, NatureCNN
from understanding_rl_vision.attribution import (
    LayerNotFoundError,
    NotABottleneckError,
    default_layer,
    discover_layers,
    resolve_layers,
)


def layers_of(cls, shape, actions):
    model = cls(shape, actions)
    return model, discover_layers(model, torch.zeros(1, shape[2], shape[0], shape[1]))


def test_clear_cnn_layers_match_the_original():
    _, layers = layers_of(ClearCNN, (64, 64, 3), 15)
    assert [layer.label for layer in layers] == ["1a", "2a", "2b", "3a", "4a"]
    assert [layer.name for layer in layers] == ["relu1a", "relu2a", "relu2b", "relu3a", "relu4a"]
    assert layers[2].shape == (32, 32, 32)
    assert default_layer(layers).label == "2b"  # the layer the paper found interpretable


def test_impala_layers_are_residual_block_outputs_not_crossed_relus():
    _, layers = layers_of(ImpalaCNN, (64, 64, 3), 15)
    assert [(layer.label, layer.name) for layer in layers] == [
        ("1a", "stacks.0.res0"),
        ("1b", "stacks.0.res1"),
        ("2a", "stacks.1.res0"),
        ("2b", "stacks.1.res1"),
        ("3a", "stacks.2.res0"),
        ("3b", "stacks.2.res1"),
        ("3c", "relu"),
    ]
    assert default_layer(layers).name == "stacks.1.res1"


def test_nature_cnn_layers():
    _, layers = layers_of(NatureCNN, (84, 84, 4), 4)
    assert [(layer.label, layer.name, layer.shape) for layer in layers] == [
        ("1a", "relu1", (32, 20, 20)),
        ("2a", "relu2", (64, 9, 9)),
        ("3a", "relu3", (64, 7, 7)),
    ]


def test_named_layers_by_name_or_label_and_bad_names():
    model = ImpalaCNN((64, 64, 3), 15)
    example = torch.zeros(1, 3, 64, 64)
    assert [layer.name for layer in resolve_layers(model, example, ["2b", "stacks.0.res0"])] == [
        "stacks.1.res1",
        "stacks.0.res0",
    ]
    with pytest.raises(LayerNotFoundError, match="valid: stacks, stacks.0"):
        resolve_layers(model, example, ["stacks.9"])
    with pytest.raises(NotABottleneckError, match="skip connection crosses it") as info:
        resolve_layers(model, example, ["stacks.0.res0.relu0"])  # the residual add bypasses it
    assert "2b=stacks.1.res1" in str(info.value) and "\n" not in str(info.value)
