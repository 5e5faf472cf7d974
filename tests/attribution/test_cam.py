"""Grad-CAM, Grad-CAM++ and HiResCAM against Captum, pytorch-grad-cam's formulas, and a toy network."""

from dataclasses import fields, replace

import numpy as np
import pytest
import torch
from captum.attr import LayerGradCam
from torch import nn

from understanding_rl_vision.attribution import ExplainedModel, Output, explain_agent, hook_count, resolve_layers
from understanding_rl_vision.attribution.methods import cam
from understanding_rl_vision.attribution.methods.base import REGISTRY, method_class
from understanding_rl_vision.attribution.methods.cam import GradCAM, GradCAMChannels, GradCAMPlusPlus, HiResCAM
from understanding_rl_vision.errors import UserError

TOLERANCE = 1e-4
OUTPUT_NAMES = ["value", "logit:RIGHT"]


@pytest.fixture(scope="module")
def trained():
    """The bundled agent, a few of its own CoinRun frames, and layer 3b (8x8)."""
    from understanding_rl_vision.agents import load_checkpoint
    from understanding_rl_vision.demo import bundled_agent_path
    from understanding_rl_vision.envs import make_vec_env

    agent = load_checkpoint(bundled_agent_path())
    rng = np.random.default_rng(0)
    frames = []
    with make_vec_env("coinrun", num_envs=2, seed=0) as env:
        step = env.reset()
        for _ in range(3):
            frames.append(step.obs)
            step = env.step(rng.integers(0, env.num_actions, size=2))
    inputs = agent.preprocess(np.concatenate(frames))
    explained = explain_agent(agent)
    (layer,) = resolve_layers(agent.model, inputs[:1], ["3b"])
    return agent, explained, inputs, layer.name


def relative_difference(ours: torch.Tensor, reference: torch.Tensor) -> float:
    return float((ours - reference).abs().max() / reference.abs().max())


def forward_k(explained: ExplainedModel, output: Output):
    weights = torch.tensor(output.weights)
    return lambda x: explained.forward(x) @ weights


def activations_and_gradients(explained: ExplainedModel, inputs: torch.Tensor, layer: str, output: Output):
    """A and d output / d A as pytorch-grad-cam 1.5.7 gets them (activations_and_gradients.py: a forward
    hook stores the output and a tensor hook its gradient; base_cam.py: backward of the summed target)."""
    store = {}

    def hook(module, args, out):
        store["activations"] = out.detach().numpy()
        out.register_hook(lambda grad: store.__setitem__("grads", grad.detach().numpy()))

    handle = dict(explained.model.named_modules())[layer].register_forward_hook(hook)
    try:
        forward_k(explained, output)(inputs).sum().backward()
    finally:
        handle.remove()
    explained.model.zero_grad()
    return store["activations"], store["grads"]


def reference_gradcam_plusplus(activations: np.ndarray, grads: np.ndarray) -> np.ndarray:
    """pytorch_grad_cam/grad_cam_plusplus.py (get_cam_weights) then base_cam.py (get_cam_image, the
    np.maximum in compute_cam_per_layer), version 1.5.7, without the resize and min-max scaling."""
    grads_power_2 = grads**2
    grads_power_3 = grads_power_2 * grads
    spatial_axes = tuple(range(2, activations.ndim))
    sum_activations = np.sum(activations, axis=spatial_axes)
    sum_activations = sum_activations.reshape(sum_activations.shape + (1,) * len(spatial_axes))
    eps = 0.000001
    aij = grads_power_2 / (2 * grads_power_2 + sum_activations * grads_power_3 + eps)
    aij = np.where(grads != 0, aij, 0)
    weights = np.maximum(grads, 0) * aij
    weights = np.sum(weights, axis=spatial_axes)
    cam = (weights[:, :, None, None] * activations).sum(axis=1)
    return np.maximum(cam, 0)


def reference_hirescam(activations: np.ndarray, grads: np.ndarray, relu: bool = True) -> np.ndarray:
    """pytorch_grad_cam/hirescam.py (get_cam_image) then base_cam.py's np.maximum, version 1.5.7."""
    cam = (grads * activations).sum(axis=1)
    return np.maximum(cam, 0) if relu else cam


@pytest.mark.parametrize("relu", [True, False])
def test_gradcam_equals_captum_layer_gradcam(trained, relu):
    agent, explained, inputs, layer = trained
    outputs = explained.outputs(OUTPUT_NAMES)
    ours = GradCAM(relu=relu).attribute(explained, inputs, outputs, layer)
    assert ours.shape == (2, len(inputs), 8, 8) and ours.dtype == torch.float32 and ours.device.type == "cpu"
    module = dict(agent.model.named_modules())[layer]
    for k, output in enumerate(outputs):
        reference = LayerGradCam(forward_k(explained, output), module).attribute(inputs, relu_attributions=relu)
        difference = relative_difference(ours[k], reference.squeeze(1).detach())
        print(f"gradcam relu={relu} {output.name}: max relative difference {difference:.2e}")
        assert difference <= TOLERANCE, (output.name, difference)
    assert (ours >= 0).all() if relu else (ours < 0).any()


def test_gradcam_channels_sum_to_the_unrectified_map(trained):
    _, explained, inputs, layer = trained
    outputs = explained.outputs(OUTPUT_NAMES)
    channels = GradCAMChannels().attribute(explained, inputs, outputs, layer)
    assert channels.shape == (2, len(inputs), 32, 8, 8)
    unrectified = GradCAM(relu=False).attribute(explained, inputs, outputs, layer)
    torch.testing.assert_close(channels.sum(2), unrectified, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(("method", "label"), [("gradcam++", "3c"), ("hirescam", "3b"), ("hirescam", "3c")])
def test_equals_pytorch_grad_cam_formulas(trained, method, label):
    """Grad-CAM++ at 3c, a ReLU's output as the method assumes: at 3b (a residual sum, negative in
    places) its denominator 2 g^2 + sum(A) g^3 + eps nears zero for some channels, where the one-ulp
    difference between numpy's and torch's float32 sum of A moves the map by ~9e-5 of its maximum."""
    agent, explained, inputs, _ = trained
    (resolved,) = resolve_layers(agent.model, inputs[:1], [label])
    layer = resolved.name
    outputs = explained.outputs(OUTPUT_NAMES)
    ours = method_class(method)().attribute(explained, inputs, outputs, layer)
    reference_cam = reference_gradcam_plusplus if method == "gradcam++" else reference_hirescam
    for k, output in enumerate(outputs):
        reference = torch.from_numpy(reference_cam(*activations_and_gradients(explained, inputs, layer, output)))
        difference = relative_difference(ours[k], reference)
        print(f"{method} at {label} {output.name}: max relative difference {difference:.2e}")
        assert difference <= TOLERANCE, (output.name, difference)


def test_hirescam_without_relu(trained):
    _, explained, inputs, layer = trained
    (output,) = explained.outputs("value")
    ours = HiResCAM(relu=False).attribute(explained, inputs, [output], layer)[0]
    reference = torch.from_numpy(
        reference_hirescam(*activations_and_gradients(explained, inputs, layer, output), False)
    )
    assert relative_difference(ours, reference) <= TOLERANCE
    assert (ours < 0).any()


class Tiny(nn.Module):
    """conv -> ReLU ("feat") -> a head that reads ``feat`` through ``mask`` with per-channel weights."""

    def __init__(self, mask: torch.Tensor, channel_weights: torch.Tensor):
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3, padding=1)
        with torch.no_grad():
            self.conv.weight.copy_(torch.rand(self.conv.weight.shape, generator=torch.Generator().manual_seed(0)))
            self.conv.bias.zero_()
        self.feat = nn.ReLU()
        self.register_buffer("mask", mask)
        self.register_buffer("channel_weights", channel_weights)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feat = self.feat(self.conv(x)) * self.mask
        return (feat * self.channel_weights[:, None, None]).sum(dim=(1, 2, 3))[:, None]


def tiny_explained(mask: torch.Tensor, channel_weights=(1.0, 0.5)) -> ExplainedModel:
    model = Tiny(mask, torch.tensor(channel_weights))
    return ExplainedModel(model, model, ("value",))


def test_every_map_peaks_on_the_square_the_output_reads():
    size, square = 16, (slice(9, 13), slice(3, 7))
    mask = torch.zeros(size, size)
    mask[square] = 1.0
    explained = tiny_explained(mask)
    frames = 0.05 * torch.rand(3, 1, size, size, generator=torch.Generator().manual_seed(1))
    frames[:, 0, 9:13, 3:7] += 1.0  # the bright square the output reads
    frames[:, 0, 2:5, 10:14] += 0.6  # a dimmer one it ignores
    outputs = explained.outputs("value")
    for name in ("gradcam", "gradcam++", "hirescam"):
        maps = method_class(name)().attribute(explained, frames, outputs, "feat")[0]
        assert maps.shape == (3, size, size)
        for frame in maps:
            row, column = divmod(int(frame.argmax()), size)
            assert mask[row, column] == 1, (name, row, column)
    hires = HiResCAM().attribute(explained, frames, outputs, "feat")[0]
    assert (hires[:, mask == 0] == 0).all()  # the exact gradient: nothing outside what the output reads


def test_hirescam_equals_gradcam_when_the_gradient_is_spatially_constant():
    """A head that sums the layer with per-channel weights has d out / d A_c = v_c everywhere, so the
    spatial mean is the gradient itself and Grad-CAM's sum_c mean(g_c) A_c is HiResCAM's sum_c g_c A_c."""
    explained = tiny_explained(torch.ones(8, 8), channel_weights=(1.0, -2.0))
    frames = torch.rand(4, 1, 8, 8, generator=torch.Generator().manual_seed(2))
    outputs = explained.outputs("value")
    for relu in (True, False):
        hires = HiResCAM(relu=relu).attribute(explained, frames, outputs, "feat")
        grad = GradCAM(relu=relu).attribute(explained, frames, outputs, "feat")
        torch.testing.assert_close(hires, grad, rtol=1e-5, atol=1e-6)
    assert (HiResCAM(relu=False).attribute(explained, frames, outputs, "feat") < 0).any()


def test_chunks_are_invisible(trained, monkeypatch):
    _, explained, inputs, layer = trained
    outputs = explained.outputs(OUTPUT_NAMES)
    whole = GradCAMPlusPlus().attribute(explained, inputs, outputs, layer)
    monkeypatch.setattr(cam, "CHUNK", 4)
    torch.testing.assert_close(GradCAMPlusPlus().attribute(explained, inputs, outputs, layer), whole)


METHODS = [GradCAM(), GradCAMChannels(), GradCAMPlusPlus(), HiResCAM()]


@pytest.mark.parametrize("method", METHODS, ids=lambda m: m.info.name)
def test_hooks_and_frozen_parameters_are_restored_on_every_path(trained, method):
    agent, explained, inputs, layer = trained
    model = agent.model
    outputs = explained.outputs("value")

    def restored() -> bool:
        return hook_count(model) == 0 and all(p.requires_grad for p in model.parameters())

    method.attribute(explained, inputs[:2], outputs, layer)
    assert restored()
    with pytest.raises(UserError, match="unknown output 'bogus'"):
        method.attribute(explained, inputs[:2], explained.outputs(["value", "bogus"]), layer)
    with pytest.raises(UserError, match="outputs weigh 3"):
        method.attribute(explained, inputs[:2], [Output("short", (1.0, 0.0, 0.0))], layer)
    assert restored()
    with pytest.raises(UserError, match="unknown layer"):
        method.attribute(explained, inputs[:2], outputs, "stacks.9")
    with pytest.raises(UserError, match="explains a layer"):
        method.attribute(explained, inputs[:2], outputs, None)
    with pytest.raises(UserError, match="no frames"):
        method.attribute(explained, inputs[:0], outputs, layer)
    assert restored()

    def broken(x):
        explained.forward(x)
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        method.attribute(replace(explained, forward=broken), inputs[:2], outputs, layer)
    assert restored()


def test_registry_and_settings():
    expected = {
        "gradcam": (GradCAM, "map", {"relu"}),
        "gradcam-channels": (GradCAMChannels, "channels", set()),
        "gradcam++": (GradCAMPlusPlus, "map", {"relu"}),
        "hirescam": (HiResCAM, "map", {"relu"}),
    }
    for name, (cls, produces, settings) in expected.items():
        assert REGISTRY[name] is cls
        assert cls.info.attaches == "layer" and cls.info.produces == produces
        assert {f.name for f in fields(cls)} == settings
        assert cls().settings() == {"method": name, **{s: True for s in settings}}
    assert GradCAM(relu=False).settings() == {"method": "gradcam", "relu": False}
    assert GradCAM() != GradCAM(relu=False)  # distinct settings, distinct cache keys
