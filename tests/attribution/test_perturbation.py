"""Perturbation saliency against xaitk-saliency 0.15.0 and a per-mask loop of the 2018 formula, on
the bundled agent; plus outputs, frame stacks, chunking, hooks and settings."""

import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter
from torch import nn
from xaitk_saliency.impls.gen_classifier_conf_sal.squared_difference_scoring import SquaredDifferenceScoring
from xaitk_saliency.impls.perturb_image.sliding_radial import SlidingRadial
from xaitk_saliency.utils.masking import occlude_image_batch, weight_regions_by_scalar

from understanding_rl_vision.attribution import ExplainedModel, explain_agent, hook_count
from understanding_rl_vision.attribution.methods import REGISTRY, MethodSettings
from understanding_rl_vision.attribution.methods import perturbation as module
from understanding_rl_vision.attribution.methods.perturbation import Perturbation
from understanding_rl_vision.errors import ConfigError, UserError

TOLERANCE = 1e-4  # max |ours - reference| relative to max |reference|
RADIUS, STRIDE, BLUR = 5, 5, 3


@pytest.fixture(scope="module")
def trained():
    """The bundled agent and two of its own CoinRun frames (64x64x3) after a few random steps."""
    from understanding_rl_vision.agents import load_checkpoint
    from understanding_rl_vision.demo import bundled_agent_path
    from understanding_rl_vision.envs import make_vec_env

    agent = load_checkpoint(bundled_agent_path())
    rng = np.random.default_rng(0)
    with make_vec_env("coinrun", num_envs=2, seed=0) as env:
        step = env.reset()
        for _ in range(5):
            step = env.step(rng.integers(env.num_actions, size=env.num_envs))
    return agent, explain_agent(agent), agent.preprocess(step.obs)


@pytest.fixture(scope="module")
def maps(trained):
    """Our value, actor and per-logit maps of both frames, (1 + 1 + A, 2, 64, 64)."""
    _, explained, inputs = trained
    outputs = explained.outputs(["value", "actor", "logits"])
    return Perturbation().attribute(explained, inputs, outputs)


def relative_difference(ours, reference) -> float:
    ours, reference = np.asarray(ours, dtype=np.float64), np.asarray(reference, dtype=np.float64)
    return float(np.abs(ours - reference).max() / np.abs(reference).max())


def predict(explained: ExplainedModel, images: np.ndarray) -> np.ndarray:
    """The output vector (value, logits) of (n, C, H, W) float32 images."""
    with torch.no_grad():
        return explained.forward(torch.from_numpy(np.ascontiguousarray(images))).numpy()


def test_equals_xaitk_sliding_radial_and_squared_difference_scoring(trained, maps):
    """xaitk's own steps: SlidingRadial masks (the part kept), occlude_image_batch with the blurred frame
    as fill, and SquaredDifferenceScoring.generate's score and weight_regions_by_scalar, stopping
    before its min-max rescaling; then generate itself against our map rescaled."""
    _, explained, inputs = trained
    perturber = SlidingRadial(radius=(RADIUS, RADIUS), stride=(STRIDE, STRIDE), sigma=(RADIUS, RADIUS))
    for n, frame in enumerate(inputs.numpy()):
        image = frame.transpose(1, 2, 0)  # HWC, as xaitk takes images
        kept = perturber.perturb(image)
        assert kept.shape == (169, 64, 64)
        fill = gaussian_filter(image, sigma=(BLUR, BLUR, 0))  # each channel on its own
        perturbed = occlude_image_batch(image, kept, fill=fill).transpose(0, 3, 1, 2)
        reference, changed = predict(explained, frame[None])[0], predict(explained, perturbed)
        for k, columns in ((0, [0]), (1, list(range(1, changed.shape[1])))):  # value (critic), actor
            diff = 0.5 * ((reference[columns] - changed[:, columns]) ** 2).sum(axis=1, keepdims=True)
            expected = weight_regions_by_scalar(diff, kept)[0]
            difference = relative_difference(maps[k, n], expected)
            print(f"xaitk frame {n} {'value' if k == 0 else 'actor'}: max relative difference {difference:.2e}")
            assert difference <= TOLERANCE, (n, k, difference)
            rescaled = SquaredDifferenceScoring().generate(reference[columns], changed[:, columns], kept)
            ours = maps[k, n].double()
            assert relative_difference((ours - ours.min()) / (ours - ours.min()).max(), rescaled) <= TOLERANCE


def test_equals_a_per_mask_loop_of_the_2018_formula(trained, maps):
    """One model call per mask, everything in scipy. Both filters use scipy's default boundary,
    ``reflect``, as xaitk's SlidingRadial (mask) does and our torch filters reproduce; a ``constant``
    mask blur would dim the masks at the edge and move every edge score."""
    _, explained, inputs = trained
    frame = inputs[0].numpy().astype(np.float64)
    _, height, width = frame.shape
    blurred = gaussian_filter(frame, sigma=(0, BLUR, BLUR))
    reference = predict(explained, frame[None].astype(np.float32))[0]
    y, x = np.ogrid[:height, :width]
    numerator = np.zeros((3, height, width))
    denominator = np.zeros((height, width))
    for i in range(0, height, STRIDE):  # every centre, the last row and column included
        for j in range(0, width, STRIDE):
            disc = ((y - i) ** 2 + (x - j) ** 2 < RADIUS**2).astype(np.float64)
            mask = gaussian_filter(disc, sigma=RADIUS)
            mask /= mask.max()
            perturbed = frame * (1 - mask) + blurred * mask
            change = reference - predict(explained, perturbed[None].astype(np.float32))[0]
            scores = [0.5 * change[0] ** 2, 0.5 * (change[1:] ** 2).sum(), 0.5 * change[3] ** 2]
            numerator += np.multiply.outer(scores, mask)
            denominator += mask
    expected = numerator / denominator
    for k, ours in enumerate([maps[0, 0], maps[1, 0], maps[2 + 2, 0]]):  # value, actor, the third logit
        difference = relative_difference(ours, expected[k])
        print(f"2018 loop output {k}: max relative difference {difference:.2e}")
        assert difference <= TOLERANCE, (k, difference)
    assert (maps[:, 0, -1] > 0).all() and (maps[:, 0, :, -1] > 0).all()  # the last row and column are scored


def test_actor_is_the_sum_of_the_logit_maps(maps):
    torch.testing.assert_close(maps[1], maps[2:].sum(dim=0), rtol=1e-5, atol=1e-7 * float(maps[1].max()))
    assert (maps[1] > 0).all() and (maps[0] > 0).all()


def test_taken_action_equals_that_logit_frame_by_frame(trained):
    agent, explained, inputs = trained
    actions = torch.tensor([4, 11])
    result = Perturbation().attribute(explained, inputs, explained.outputs(["action", "logits"]), actions=actions)
    for n, action in enumerate(actions.tolist()):
        assert torch.equal(result[0, n], result[1 + action, n]), agent.action_names[action]
    assert not torch.equal(result[1 + 4, 1], result[1 + 11, 1])
    with pytest.raises(UserError, match="needs the actions taken"):
        Perturbation().attribute(explained, inputs, explained.outputs("action"))


class ReadsOneFrame(nn.Module):
    """Value and one logit from channels ``channels`` of the stack only (elementwise, so a frame's
    outputs never depend on the others in its batch)."""

    def __init__(self, channels: slice, size: int = 12):
        super().__init__()
        self.channels = channels
        self.register_buffer("weight", torch.linspace(-1.0, 1.0, size * size).view(size, size))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        read = (x[:, self.channels] * self.weight).sum(dim=(1, 2, 3))
        return torch.stack([read, read.square()], dim=1)


def stack_maps(channels: slice, stacked: int, **settings) -> torch.Tensor:
    model = ReadsOneFrame(channels)
    explained = ExplainedModel(model, model, ("value", "logit:A"))
    frames = torch.rand(2, stacked, 12, 12, generator=torch.Generator().manual_seed(0))
    method = Perturbation(perturbation_radius=2.0, perturbation_stride=2, **settings)
    return method.attribute(explained, frames, explained.outputs(["value", "actor"]))


def test_newest_perturbs_only_the_newest_frame():
    # Four grey frames (Atari: one channel each, the newest last), the model reading the oldest.
    assert (stack_maps(slice(0, 1), 4, perturbation_frames="newest") == 0).all()
    assert (stack_maps(slice(0, 1), 4, perturbation_frames="all").amax(dim=(2, 3)) > 0).all()
    # Reading the newest frame, perturbing only it is perturbing everything.
    newest = stack_maps(slice(3, 4), 4, perturbation_frames="newest")
    assert (newest.amax(dim=(2, 3)) > 0).all()
    torch.testing.assert_close(newest, stack_maps(slice(3, 4), 4, perturbation_frames="all"), rtol=0, atol=0)
    # Two RGB frames (Gymnasium stacks): six channels need to be told how they split.
    assert (stack_maps(slice(0, 3), 6, perturbation_frames="newest", perturbation_frame_channels=3) == 0).all()
    assert (stack_maps(slice(2, 3), 6, perturbation_frames="newest", perturbation_frame_channels=1) == 0).all()
    assert (stack_maps(slice(3, 6), 6, perturbation_frames="newest", perturbation_frame_channels=3) > 0).any()
    with pytest.raises(UserError, match="grey frames or RGB ones; set perturbation_frame_channels"):
        stack_maps(slice(0, 1), 6, perturbation_frames="newest")
    with pytest.raises(UserError, match="does not divide the input's 4 channels"):
        stack_maps(slice(0, 1), 4, perturbation_frames="newest", perturbation_frame_channels=3)
    stack_maps(slice(0, 1), 6, perturbation_frames="all")  # all frames: no split needed


def test_chunks_are_invisible_and_no_hook_is_left(trained, maps, monkeypatch):
    agent, explained, inputs = trained
    monkeypatch.setattr(module, "CHUNK_PIXELS", 64 * 64 * 7)  # 7 rows a pass: chunks straddle frames
    chunked = Perturbation().attribute(explained, inputs, explained.outputs(["value", "actor", "logits"]))
    torch.testing.assert_close(chunked, maps, rtol=1e-5, atol=1e-6 * float(maps.max()))
    assert hook_count(agent.model) == 0 and all(p.requires_grad for p in agent.model.parameters())


@pytest.mark.parametrize(
    "settings",
    [
        {"perturbation_radius": 0},
        {"perturbation_radius": -1.0},
        {"perturbation_radius": float("nan")},
        {"perturbation_radius": True},
        {"perturbation_stride": 0},
        {"perturbation_stride": 2.5},
        {"perturbation_blur": 0.0},
        {"perturbation_blur": float("inf")},
        {"perturbation_frames": "oldest"},
        {"perturbation_frame_channels": -1},
    ],
)
def test_bad_settings_are_config_errors(settings):
    (name,) = settings
    with pytest.raises(ConfigError, match=name):
        Perturbation(**settings)
    with pytest.raises(ConfigError, match=name):
        MethodSettings(**settings)  # the run's settings check every method at once


def test_declaration_and_refusals(trained):
    _, explained, inputs = trained
    assert REGISTRY["perturbation"] is Perturbation
    info = Perturbation.info
    assert info.title == "Perturbation saliency" and not info.scalar_outputs
    assert (info.attaches, info.produces) == ("input", "map")
    assert Perturbation().settings() == {
        "method": "perturbation",
        "perturbation_radius": 5.0,
        "perturbation_stride": 5,
        "perturbation_blur": 3.0,
        "perturbation_frames": "all",
        "perturbation_frame_channels": 0,
    }
    with pytest.raises(UserError, match="no frames"):
        Perturbation().attribute(explained, inputs[:0], explained.outputs("value"))
    with pytest.raises(UserError, match=r"needs frames \(N, C, H, W\)"):
        Perturbation().attribute(explained, inputs[0], explained.outputs("value"))
