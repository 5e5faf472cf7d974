"""Seed 001's perturbation-saliency pipeline (xaitk-saliency's Atari notebook, after Greydanus et al.
2018), written as the seed writes it, for ``tests/attribution/test_perturbation_recurrent.py`` and
``benchmarks/methods.py``.

* :class:`NNPolicy`: the seed's A3C LSTM network, verbatim (four 3x3 stride-2 convolutions with ELU,
  an ``LSTMCell(800, 256)``, critic and actor heads); :func:`seed_policy` loads an ``lstm`` agent's
  weights into it, so the pipeline runs the seed's own module.
* :func:`gen_sal_maps`: the seed's ``gen_sal_maps`` for one frame: score the frame with the stored
  ``(hx, cx)`` of the previous step, ``SlidingRadial`` masks, the frame blurred by scipy's
  ``gaussian_filter(frame, sigma=3)`` as ``occlude_image_batch``'s fill, one model call per
  perturbed image with that same ``(hx, cx)``, then the saliency generator on the logits (actor)
  and on the value (critic). Returned instead of stored in globals, with the predictions.
* :class:`BeforeRescaling`: ``SquaredDifferenceScoring.generate`` stopped before its final min-max
  rescaling to [0, 1] (our maps are not rescaled), to pass as the seed's ``saliency_gen``.

Test and benchmark only: nothing in ``understanding_rl_vision`` imports xaitk-saliency or scipy.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from scipy.ndimage import gaussian_filter
from torch import nn
from torch.nn import functional
from xaitk_saliency.impls.gen_classifier_conf_sal.squared_difference_scoring import SquaredDifferenceScoring
from xaitk_saliency.impls.perturb_image.sliding_radial import SlidingRadial
from xaitk_saliency.utils.masking import occlude_image_batch, weight_regions_by_scalar

RADIUS, STRIDE, BLUR = 5, 5, 3
"""Issue 17's 2018 settings at 80x80: disc radius 5 (also the mask's blur sigma), stride 5, fill
blurred with sigma 3; our ``perturbation`` defaults."""
HIDDEN = 256
ACTIONS = ("NOOP", "FIRE", "RIGHT", "LEFT")


def breakout_lstm_agent(seed: int = 0) -> Any:
    """A seeded random ``lstm`` agent on seed 001's Breakout frames (80x80x1), its actor head
    re-drawn with gain 1 instead of PPO's 0.01 (fixed seed), so its logits are about 0.1 rather than
    0.001 and the actor maps are not degenerate."""
    from understanding_rl_vision.agents import make_agent
    from understanding_rl_vision.envs.spec import parse_env_id

    spec = parse_env_id("ALE/Breakout-v5", observation="greydanus", frame_stack=1, screen_size=80)
    agent = make_agent("lstm", spec, (80, 80, 1), ACTIONS, seed=seed)
    with torch.no_grad():
        nn.init.orthogonal_(agent.model.policy.weight, gain=1.0, generator=torch.Generator().manual_seed(seed + 1))
    return agent


def perturber(radius: float = RADIUS, stride: int = STRIDE) -> SlidingRadial:
    """``SlidingRadial(radius=(5, 5), stride=(5, 5), sigma=(5, 5))``: 16 x 16 = 256 masks at 80x80."""
    return SlidingRadial(radius=(radius, radius), stride=(stride, stride), sigma=(radius, radius))


class NNPolicy(torch.nn.Module):
    """an actor-critic neural network (seed 001, verbatim)."""

    def __init__(self, channels: int, num_actions: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, 32, 3, stride=2, padding=1)
        self.conv2 = nn.Conv2d(32, 32, 3, stride=2, padding=1)
        self.conv3 = nn.Conv2d(32, 32, 3, stride=2, padding=1)
        self.conv4 = nn.Conv2d(32, 32, 3, stride=2, padding=1)
        self.lstm = nn.LSTMCell(32 * 5 * 5, 256)
        self.critic_linear, self.actor_linear = nn.Linear(256, 1), nn.Linear(256, num_actions)

    def forward(
        self,
        inputs: tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]],
    ) -> tuple[torch.Tensor, torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        inputs, (hx, cx) = inputs
        x = functional.elu(self.conv1(inputs))
        x = functional.elu(self.conv2(x))
        x = functional.elu(self.conv3(x))
        x = functional.elu(self.conv4(x))
        x = x.view(-1, 32 * 5 * 5)
        hx, cx = self.lstm(x, (hx, cx))
        return self.critic_linear(hx), self.actor_linear(hx), (hx, cx)


def seed_policy(agent: Any) -> NNPolicy:
    """The seed's module holding an ``lstm`` agent's weights (its heads ``policy`` and ``value`` are
    the seed's ``actor_linear`` and ``critic_linear``)."""
    renamed = {"policy.": "actor_linear.", "value.": "critic_linear."}
    state = {}
    for name, tensor in agent.model.state_dict().items():
        for ours, theirs in renamed.items():
            if name.startswith(ours):
                name = theirs + name[len(ours) :]
        state[name] = tensor.detach().clone().cpu()
    model = NNPolicy(channels=agent.observation_shape[2], num_actions=agent.num_actions)
    model.load_state_dict(state)
    return model.eval()


def split_state(state: np.ndarray | torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Our stored state ``[h, c]`` (512,) as the seed's ``(hx, cx)``, each (1, 256)."""
    state = torch.as_tensor(np.asarray(state, dtype=np.float32)).view(1, -1)
    return state[:, :HIDDEN].contiguous(), state[:, HIDDEN:].contiguous()


class BeforeRescaling(SquaredDifferenceScoring):
    """``SquaredDifferenceScoring.generate`` without its last two lines (the min-max rescaling)."""

    def generate(self, reference: np.ndarray, perturbed: np.ndarray, perturbed_masks: np.ndarray) -> np.ndarray:
        diff = 0.5 * ((reference - np.asarray(perturbed)) ** 2).sum(axis=1, keepdims=True)
        return weight_regions_by_scalar(diff, perturbed_masks)[0]


@dataclass
class Predictions:
    """What the seed's ``gen_sal_maps`` scores, kept for rescoring."""

    ref_logit: np.ndarray  # (A,)
    ref_value: np.ndarray  # (1,)
    pert_logits: np.ndarray  # (masks, A)
    pert_values: np.ndarray  # (masks, 1)
    pert_masks: np.ndarray  # (masks, H, W) the part kept, 1 - M


def gen_sal_maps(
    model: torch.nn.Module,
    ref_img_proc: np.ndarray,
    hx: torch.Tensor,
    cx: torch.Tensor,
    perturber: SlidingRadial,
    saliency_gen: SquaredDifferenceScoring,
    blur: float = BLUR,
) -> tuple[np.ndarray, np.ndarray, Predictions]:
    """The seed's ``gen_sal_maps`` for one preprocessed (80, 80) float32 frame and the ``(hx, cx)``
    entering it: returns the actor map, the critic map and the predictions they came from."""
    height, width = ref_img_proc.shape
    # Score reference frame
    ref_img_tensor = torch.tensor(ref_img_proc.reshape(1, 1, height, width))
    model_inp = (ref_img_tensor, (hx, cx))
    ref_value, ref_logit, _ = model(model_inp)
    ref_value = ref_value.detach().numpy()[0]
    ref_logit = ref_logit.detach().numpy()[0]
    # Get image perturbations
    pert_masks = perturber(ref_img_proc)
    blurred_img = gaussian_filter(ref_img_proc, sigma=blur)
    pert_imgs = occlude_image_batch(ref_img_proc, pert_masks, fill=blurred_img)
    pert_values = []
    pert_logits = []
    # Score perturbed frames
    for pert_img in pert_imgs:
        pert_img_tensor = torch.tensor(pert_img.reshape(1, 1, height, width))
        model_inp = (pert_img_tensor, (hx, cx))
        pert_value, pert_logit, _ = model(model_inp)
        pert_values.append(pert_value.detach().numpy()[0])
        pert_logits.append(pert_logit.detach().numpy()[0])
    actor = saliency_gen(ref_logit, pert_logits, pert_masks)
    critic = saliency_gen(ref_value, pert_values, pert_masks)
    predictions = Predictions(ref_logit, ref_value, np.stack(pert_logits), np.stack(pert_values), pert_masks)
    return actor, critic, predictions


def before_rescaling(predictions: Predictions) -> tuple[np.ndarray, np.ndarray]:
    """The actor and critic maps of ``predictions`` before SquaredDifferenceScoring's rescaling."""
    scoring, p = BeforeRescaling(), predictions
    return scoring(p.ref_logit, p.pert_logits, p.pert_masks), scoring(p.ref_value, p.pert_values, p.pert_masks)


def relative_difference(ours: Any, reference: Any) -> float:
    """max |ours - reference| relative to max |reference|."""
    ours, reference = np.asarray(ours, dtype=np.float64), np.asarray(reference, dtype=np.float64)
    return float(np.abs(ours - reference).max() / np.abs(reference).max())
