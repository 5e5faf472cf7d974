"""Seed 003's measurements: nearest real frames, novelty, and generator goggles."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from tiny_states import tiny_agent, tiny_vae

from understanding_rl_vision.states.measures import (
    NOVELTY_THRESHOLDS,
    differing_share,
    goggled,
    goggles_score,
    nearest_by_energy,
    nearest_by_pixels,
    novelty_table,
    reconstruct_observations,
    target_energies,
)
from understanding_rl_vision.states.model import to_images, to_observations
from understanding_rl_vision.states.perception import agent_outputs
from understanding_rl_vision.states.targets import Target
from understanding_rl_vision.training.evaluate import EvaluationResult


def test_nearest_by_pixels_is_the_brute_force_argmin():
    rng = np.random.default_rng(0)
    real = rng.integers(0, 256, (600, 6, 5, 3), dtype=np.uint8)  # more than one chunk of 256
    generated = rng.integers(0, 256, (7, 6, 5, 3), dtype=np.uint8)
    generated[3] = real[417]  # an exact copy, in the second chunk
    generated[5] = np.clip(real[520].astype(int) + 3, 0, 255)  # nearly a copy, in the third
    index, error = nearest_by_pixels(generated, real)
    difference = generated[:, None].astype(np.float64) / 255 - real[None].astype(np.float64) / 255
    brute = (difference**2).reshape(7, 600, -1).mean(axis=2)
    np.testing.assert_array_equal(index, brute.argmin(axis=1))
    np.testing.assert_allclose(error, brute.min(axis=1), rtol=1e-4, atol=1e-6)
    assert index[3] == 417 and error[3] == pytest.approx(0.0, abs=1e-6)
    assert index[5] == 520 and error[5] < 1e-3
    assert index.dtype.kind == "i" and error.shape == (7,)


def test_differing_share_counts_pixels_beyond_a_quarter_of_the_range():
    base = np.zeros((2, 2, 5, 3), np.uint8)  # 10 pixels per state
    other = base.copy()
    other[0, 0, 0, 1] = 64  # just over 63.75: differs
    other[0, 0, 1, 0] = 63  # just under: does not
    other[0, 1, 2] = (200, 200, 200)  # every channel: one pixel, counted once
    other[1, 1, 4, 2] = 255
    shares = differing_share(other, base)
    assert shares.tolist() == [0.2, 0.1]
    assert differing_share(base, other).tolist() == [0.2, 0.1]  # symmetric: no uint8 wrap-around
    assert differing_share(base, base).tolist() == [0.0, 0.0]


def test_novelty_table_counts_states_strictly_above_each_threshold():
    table = novelty_table(np.array([0.0, 0.06, 0.10, 0.15, 0.45, 0.9]))
    assert list(table) == list(NOVELTY_THRESHOLDS)
    assert table == {0.05: 5 / 6, 0.10: 3 / 6, 0.20: 2 / 6, 0.30: 2 / 6, 0.40: 2 / 6, 0.50: 1 / 6}
    assert novelty_table(np.array([0.25, 0.75]), thresholds=(0.5,)) == {0.5: 0.5}


def test_nearest_by_energy():
    real = np.array([0.0, 1.0, -2.0, 5.0, 0.9])
    np.testing.assert_array_equal(nearest_by_energy(np.array([0.95, -10.0, 4.0, 0.1, 1.0]), real), [4, 2, 3, 0, 1])


def test_target_energies_are_the_targets_on_the_agents_outputs(frames):
    agent, target = tiny_agent(q_values=True), Target("decisive", 2.0)
    found = target_energies(agent, target, frames)
    with torch.no_grad():
        expected = target.energy(agent, agent(frames)).numpy()
    assert found.shape == (32,)
    np.testing.assert_allclose(found, expected, rtol=0, atol=1e-6)


@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
def test_goggles_show_the_agent_the_generators_reconstruction(frames, layout):
    agent, vae = tiny_agent(layout=layout), tiny_vae().eval()
    seeing = goggled(agent, vae)
    assert seeing.model is agent.model and agent.forward is None  # the agent itself is unchanged
    with torch.no_grad():
        through = seeing(frames)
        expected = agent_outputs(agent, vae.reconstruct(to_images(torch.as_tensor(frames))))
        plain = agent(frames)
    assert torch.allclose(through.logits, expected.logits, rtol=0, atol=1e-5)
    assert torch.allclose(through.value, expected.value, rtol=0, atol=1e-5)
    assert float((through.logits - plain.logits).abs().max()) > 1e-3  # not what the agent sees without them


def test_reconstruct_observations_is_the_rounded_reconstruction(frames):
    vae = tiny_vae().eval()
    rebuilt = reconstruct_observations(vae, frames)
    assert rebuilt.shape == frames.shape and rebuilt.dtype == np.uint8
    expected = to_observations(vae.reconstruct(to_images(torch.as_tensor(frames)))).numpy()
    assert np.abs(rebuilt.astype(int) - expected.astype(int)).max() <= 1  # the same, up to a rounding
    assert rebuilt.std() > 0


def test_goggles_score_plays_the_tiny_env_with_and_without_goggles():
    agent, vae = tiny_agent(), tiny_vae().eval()
    plain = goggles_score(agent, None, 4, num_envs=2, seed=1, baseline=True)
    seeing = goggles_score(agent, vae, 4, num_envs=2, seed=1, baseline=True)
    for result in (plain, seeing):
        assert isinstance(result, EvaluationResult)
        assert result.episodes == 4 and result.num_envs == 2 and result.env == "understanding_rl_vision/DotGrid-v0"
        assert all(math.isfinite(x) for x in (result.mean_return, result.std_return, result.random_mean_return))
        assert 0.0 <= result.mean_return <= 1.0
    assert plain.random_mean_return == seeing.random_mean_return  # the same envs and seeds either way
    alone = goggles_score(agent, vae, 4, num_envs=2, seed=1)  # no random policy played by default
    assert alone.mean_return == seeing.mean_return and math.isnan(alone.random_mean_return)
