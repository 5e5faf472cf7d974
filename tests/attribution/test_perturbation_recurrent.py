"""Perturbation saliency on a recurrent agent (issue 17) against seed 001's pipeline written with
xaitk-saliency 0.15.0: each frame explained given the state stored for it.

A seeded random ``lstm`` agent (seed 001's A3C LSTM network, its actor head re-drawn at gain 1)
plays 9 steps of real ALE Breakout on seed 001's 80x80 grey frames; frames 1 to 8 (one episode, so
every stored state is the previous step's output, as the seed's ``history["hx"][img_idx - 1]``) are
explained for the outputs ``actor`` (the whole logit vector) and ``value`` (the critic).
"""

import numpy as np
import pytest
import torch
from seed001_pipeline import (
    BLUR,
    RADIUS,
    STRIDE,
    BeforeRescaling,
    breakout_lstm_agent,
    gen_sal_maps,
    perturber,
    relative_difference,
    seed_policy,
    split_state,
)
from xaitk_saliency.impls.gen_classifier_conf_sal.squared_difference_scoring import SquaredDifferenceScoring

from understanding_rl_vision.attribution import explain_agent
from understanding_rl_vision.attribution.methods.perturbation import Perturbation
from understanding_rl_vision.config import TrajectoryConfig
from understanding_rl_vision.rollout import collect_trajectories

TOLERANCE = 1e-4  # max |ours - reference| relative to max |reference|, per frame and output
OUTPUTS = ("actor", "value")
FRAMES = slice(1, 9)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One torch thread in this module: with two, any other busy process on a 2-core machine slows
    the 2,056 single-image calls and our batches several-fold (1.5 min instead of 6 s)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def played():
    """The agent, frames 1..8 preprocessed (8, 1, 80, 80) and the states entering them (8, 512)."""
    agent = breakout_lstm_agent(seed=0)
    trajectories = collect_trajectories(agent, TrajectoryConfig(num_envs=1, num_steps=9), seed=0, progress=False)
    assert trajectories.firsts[0, 0] and not trajectories.firsts[0, 1:].any()  # one episode
    frames = agent.preprocess(trajectories.observations[0])
    return agent, frames[FRAMES], torch.from_numpy(trajectories.states[0, FRAMES]), frames


@pytest.fixture(scope="module")
def maps(played):
    """Our (actor, value) maps of the 8 frames, all in one batch, each with its stored state."""
    agent, frames, states, _ = played
    explained = explain_agent(agent, states)
    return Perturbation().attribute(explained, frames, explained.outputs(list(OUTPUTS)))


def test_stored_states_are_the_seeds_hx_cx_of_the_previous_step(played):
    """The seed's rollout, run with its own module: ``(hx, cx)`` after frame t - 1 is the state we
    stored for frame t, so the seed's ``history["hx"][img_idx - 1]`` is our stored state."""
    agent, _, states, every = played
    policy = seed_policy(agent)
    hx, cx = split_state(np.zeros(agent.state_size, np.float32))
    with torch.no_grad():
        for t in range(FRAMES.stop - 1):
            frame = torch.tensor(every[t].numpy().reshape(1, 1, 80, 80))  # as the seed makes its input
            _, _, (hx, cx) = policy((frame, (hx, cx)))
            torch.testing.assert_close(torch.cat([hx, cx], dim=1)[0], states[t], rtol=1e-5, atol=1e-6)
    assert (states.abs().amax(dim=1) > 0.1).all()  # no frame starts from zeros


def test_equals_seed_001_pipeline_with_xaitk(played, maps):
    """The seed's gen_sal_maps (SlidingRadial radius 5 stride 5 sigma 5, occlude_image_batch with the
    sigma-3 gaussian_filter fill, one call of the seed's module per perturbed image with the
    frame's stored (hx, cx)), scored by SquaredDifferenceScoring before its min-max rescaling; then
    SquaredDifferenceScoring itself against our maps rescaled the same way."""
    agent, frames, states, _ = played
    assert (RADIUS, STRIDE, BLUR) == (5, 5, 3)
    method = Perturbation()
    assert (method.perturbation_radius, method.perturbation_stride, method.perturbation_blur) == (RADIUS, STRIDE, BLUR)
    policy, masks = seed_policy(agent), perturber()
    for n, frame in enumerate(frames.numpy()):
        hx, cx = split_state(states[n])
        with torch.no_grad():  # the seed records autograd's graph; the values are the same without
            actor, critic, predictions = gen_sal_maps(policy, frame[0], hx, cx, masks, BeforeRescaling())
        assert predictions.pert_masks.shape == (256, 80, 80)
        for k, expected in enumerate((actor, critic)):
            assert expected.max() > 1e-6
            difference = relative_difference(maps[k, n], expected)
            print(f"seed 001 frame {n + 1} {OUTPUTS[k]}: max relative difference {difference:.2e}")
            assert difference <= TOLERANCE, (n, OUTPUTS[k], difference)
        p = predictions
        scored = [(p.ref_logit, p.pert_logits), (p.ref_value, p.pert_values)]
        for k, (reference, perturbed) in enumerate(scored):
            rescaled = SquaredDifferenceScoring()(reference, perturbed, p.pert_masks)
            ours = maps[k, n].double()
            ours = (ours - ours.min()) / (ours.max() - ours.min())
            assert relative_difference(ours, rescaled) <= TOLERANCE, (n, OUTPUTS[k])


def test_maps_depend_on_the_stored_state(played, maps):
    agent, frames, _, _ = played
    explained = explain_agent(agent)  # no states: zeros, an episode's start, for every frame
    zero = Perturbation().attribute(explained, frames, explained.outputs(list(OUTPUTS)))
    for k, output in enumerate(OUTPUTS):
        for n in range(len(frames)):
            difference = relative_difference(zero[k, n], maps[k, n])
            assert difference > 100 * TOLERANCE, (output, n, difference)


def test_one_frame_at_a_time_equals_one_batch(played, maps):
    agent, frames, states, _ = played
    for n in range(len(frames)):
        explained = explain_agent(agent, states[n : n + 1])
        single = Perturbation().attribute(explained, frames[n : n + 1], explained.outputs(list(OUTPUTS)))
        for k, output in enumerate(OUTPUTS):  # the same maps, up to other batch sizes' rounding
            assert relative_difference(single[k, 0], maps[k, n]) <= TOLERANCE, (output, n)
