"""Grad-CAM, Grad-CAM++ and HiResCAM against Captum, the real pytorch-grad-cam, and a toy network."""

import sys
from dataclasses import fields, replace
from pathlib import Path

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

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from reference_libraries import (  # in tests/, put on the path above
    OutputVector,
    cam_before_scaling,
    import_pytorch_grad_cam,
    uses_stand_in,
)

pytorch_grad_cam = import_pytorch_grad_cam()
from pytorch_grad_cam.utils.image import scale_cam_image  # noqa: E402
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget  # noqa: E402

TOLERANCE = 1e-4
OUTPUT_NAMES = ["value", "logit:RIGHT", "action"]
PEERS = {
    "gradcam": pytorch_grad_cam.GradCAM,
    "gradcam++": pytorch_grad_cam.GradCAMPlusPlus,
    "hirescam": pytorch_grad_cam.HiResCAM,
}


@pytest.fixture(scope="module")
def trained():
    """The bundled agent, 6 CoinRun frames from its own play (2 envs x 3 steps), the actions it took
    there, and layer 3b (8x8)."""
    from understanding_rl_vision.agents import load_checkpoint
    from understanding_rl_vision.demo import bundled_agent_path
    from understanding_rl_vision.envs import make_vec_env

    agent = load_checkpoint(bundled_agent_path())
    generator = torch.Generator().manual_seed(0)
    frames, actions = [], []
    with make_vec_env("coinrun", num_envs=2, seed=0) as env:
        step = env.reset()
        for _ in range(3):
            taken = agent.act(step.obs, generator).actions
            frames.append(step.obs)
            actions.append(taken)
            step = env.step(taken)
    inputs = agent.preprocess(np.concatenate(frames))
    explained = explain_agent(agent)
    (layer,) = resolve_layers(agent.model, inputs[:1], ["3b"])
    return agent, explained, inputs, torch.from_numpy(np.concatenate(actions)), layer.name


def relative_difference(ours: torch.Tensor, reference: torch.Tensor) -> float:
    return float((ours - reference).abs().max() / reference.abs().max())


def entry_indices(explained: ExplainedModel, agent, name: str, actions: torch.Tensor) -> list[int]:
    """Per frame, the entry of the output vector [value, logit_0, ...] that ``name`` selects, as a
    user of either library picks it: a fixed entry, or for ``action`` the logit of the taken action."""
    if name == "action":
        return [explained.entries.index(f"logit:{agent.action_names[a]}") for a in actions.tolist()]
    return [explained.entries.index(name)] * len(actions)


def pytorch_grad_cam_maps(peer_class, agent, inputs: torch.Tensor, layer: str, targets: list, relu: bool) -> np.ndarray:
    """pytorch-grad-cam's map at the layer's resolution, before its upsampling and min-max scaling
    (see :func:`reference_libraries.cam_before_scaling`), rectified as its ``compute_cam_per_layer``
    does for ``relu``: pytorch-grad-cam has no switch, and ``get_cam_image`` is its unrectified map.

    The call's own result is checked to be the rectified map put through the library's remaining
    steps (``scale_cam_image`` to the input size, then ``aggregate_multi_layers`` over our one
    layer), so the map we compare is the one that call computed.
    """
    peer = peer_class(model=OutputVector(agent), target_layers=[dict(agent.model.named_modules())[layer]])
    try:
        returned, raw = cam_before_scaling(peer, inputs, targets)
        rectified = np.maximum(raw, 0)
        scaled = scale_cam_image(rectified, peer.get_target_width_height(inputs))
        np.testing.assert_array_equal(returned, peer.aggregate_multi_layers([scaled[:, None]]))
    finally:
        peer.activations_and_grads.release()  # a `with` block would swallow an IndexError raised in it
        agent.model.zero_grad()
    return rectified if relu else raw


def test_the_reference_is_pytorch_grad_cam_1_5_7():
    """The real package (not a copy of its formulas); a torchvision stand-in, if it was needed, is
    gone from ``sys.modules`` and refuses to run the parts of pytorch-grad-cam that would use it."""
    from importlib.metadata import version

    assert version("grad-cam") == "1.5.7"
    assert PEERS["hirescam"].__module__ == "pytorch_grad_cam.hirescam"
    if uses_stand_in(pytorch_grad_cam):
        assert not any(name.split(".")[0] == "torchvision" for name in sys.modules)
        from pytorch_grad_cam.utils.image import preprocess_image

        with pytest.raises(NotImplementedError, match="stand-in"):
            preprocess_image(np.zeros((4, 4, 3), np.float32))


@pytest.mark.parametrize("relu", [True, False])
def test_gradcam_equals_captum_layer_gradcam(trained, relu):
    agent, explained, inputs, actions, layer = trained
    outputs = explained.outputs(OUTPUT_NAMES)
    ours = GradCAM(cam_relu=relu).attribute(explained, inputs, outputs, layer, actions=actions)
    assert ours.shape == (3, len(inputs), 8, 8) and ours.dtype == torch.float32 and ours.device.type == "cpu"
    module = dict(agent.model.named_modules())[layer]
    for k, output in enumerate(outputs):
        target = torch.tensor(entry_indices(explained, agent, output.name, actions))  # one per frame
        reference = LayerGradCam(explained.forward, module).attribute(inputs, target=target, relu_attributions=relu)
        difference = relative_difference(ours[k], reference.squeeze(1).detach())
        print(f"gradcam relu={relu} {output.name}: max relative difference to Captum {difference:.2e}")
        assert difference <= TOLERANCE, (output.name, difference)
    assert (ours >= 0).all() if relu else (ours < 0).any()


def test_gradcam_channels_sum_to_the_unrectified_map(trained):
    _, explained, inputs, actions, layer = trained
    outputs = explained.outputs(OUTPUT_NAMES)
    channels = GradCAMChannels().attribute(explained, inputs, outputs, layer, actions=actions)
    assert channels.shape == (3, len(inputs), 32, 8, 8)
    unrectified = GradCAM(cam_relu=False).attribute(explained, inputs, outputs, layer, actions=actions)
    torch.testing.assert_close(channels.sum(2), unrectified, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("relu", [True, False], ids=["relu", "no-relu"])
@pytest.mark.parametrize(
    ("method", "label"), [("gradcam", "3b"), ("gradcam++", "3c"), ("hirescam", "3b"), ("hirescam", "3c")]
)
def test_equals_pytorch_grad_cam(trained, method, label, relu):
    """Ours against pytorch-grad-cam 1.5.7's GradCAM, GradCAMPlusPlus and HiResCAM on the same model,
    layer and targets (value, a logit, the taken action), each wrapped as a user of that library
    would: the agent as a module returning the output vector, one ``ClassifierOutputTarget`` per
    frame selecting an entry (see :func:`pytorch_grad_cam_maps`).

    Grad-CAM++ at 3c, a ReLU's output as the method assumes: at 3b (a residual sum, negative in
    places) its denominator 2 g^2 + sum(A) g^3 + eps nears zero for some channels, where the one-ulp
    difference between numpy's and torch's float32 sum of A moves the map by ~9e-5 of its maximum.
    Without ReLU, pytorch-grad-cam has no switch: its unrectified map is ``get_cam_image``'s."""
    agent, explained, inputs, actions, _ = trained
    (resolved,) = resolve_layers(agent.model, inputs[:1], [label])
    layer = resolved.name
    outputs = explained.outputs(OUTPUT_NAMES)
    ours = method_class(method)(cam_relu=relu).attribute(explained, inputs, outputs, layer, actions=actions)
    for k, output in enumerate(outputs):
        targets = [ClassifierOutputTarget(i) for i in entry_indices(explained, agent, output.name, actions)]
        reference = torch.from_numpy(pytorch_grad_cam_maps(PEERS[method], agent, inputs, layer, targets, relu))
        assert reference.shape == ours[k].shape
        difference = relative_difference(ours[k], reference)
        print(f"{method} at {label} relu={relu} {output.name}: max relative difference {difference:.2e}")
        assert difference <= TOLERANCE, (output.name, difference)
    if not relu and method != "gradcam++":  # its weights (positive gradients only) and 3c's activations are >= 0
        assert (ours < 0).any()
    assert hook_count(agent.model) == 0


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
        hires = HiResCAM(cam_relu=relu).attribute(explained, frames, outputs, "feat")
        grad = GradCAM(cam_relu=relu).attribute(explained, frames, outputs, "feat")
        torch.testing.assert_close(hires, grad, rtol=1e-5, atol=1e-6)
    assert (HiResCAM(cam_relu=False).attribute(explained, frames, outputs, "feat") < 0).any()


def test_chunks_are_invisible(trained, monkeypatch):
    _, explained, inputs, actions, layer = trained
    outputs = explained.outputs(OUTPUT_NAMES)
    whole = GradCAMPlusPlus().attribute(explained, inputs, outputs, layer, actions=actions)
    monkeypatch.setattr(cam, "CHUNK", 4)
    torch.testing.assert_close(GradCAMPlusPlus().attribute(explained, inputs, outputs, layer, actions=actions), whole)


METHODS = [GradCAM(), GradCAMChannels(), GradCAMPlusPlus(), HiResCAM()]


@pytest.mark.parametrize("method", METHODS, ids=lambda m: m.info.name)
def test_hooks_and_frozen_parameters_are_restored_on_every_path(trained, method):
    agent, explained, inputs, _, layer = trained
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
        "gradcam": (GradCAM, "map", {"cam_relu"}),
        "gradcam-channels": (GradCAMChannels, "channels", set()),
        "gradcam++": (GradCAMPlusPlus, "map", {"cam_relu"}),
        "hirescam": (HiResCAM, "map", {"cam_relu"}),
    }
    for name, (cls, produces, settings) in expected.items():
        assert REGISTRY[name] is cls
        assert cls.info.attaches == "layer" and cls.info.produces == produces
        assert {f.name for f in fields(cls)} == settings
        assert cls().settings() == {"method": name, **{s: True for s in settings}}
    assert GradCAM(cam_relu=False).settings() == {"method": "gradcam", "cam_relu": False}
    assert GradCAM() != GradCAM(cam_relu=False)  # distinct settings, distinct cache keys
