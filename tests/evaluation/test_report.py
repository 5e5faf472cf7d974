"""The report card on the bundled CoinRun agent's own play: every field filled, integrated gradients
complete at the layer, and the methods' deletion curves better than random maps' where they should be."""

import numpy as np
import pytest

from understanding_rl_vision.agents import load_checkpoint
from understanding_rl_vision.attribution import default_layer, discover_layers
from understanding_rl_vision.attribution.methods import method_class
from understanding_rl_vision.config import EvaluationConfig, TrajectoryConfig
from understanding_rl_vision.demo import bundled_agent_path
from understanding_rl_vision.evaluation.randomisation import randomisable_layers
from understanding_rl_vision.evaluation.report import (
    CHECKS,
    card_methods,
    format_card,
    report_card,
    spread_frames,
)
from understanding_rl_vision.rollout import collect_trajectories


@pytest.fixture(scope="module")
def played():
    agent = load_checkpoint(bundled_agent_path())
    trajectories = collect_trajectories(agent, TrajectoryConfig(num_envs=2, num_steps=24), seed=3, progress=False)
    return agent, trajectories


def test_frames_are_spread_over_every_trajectory(played):
    _, trajectories = played
    frames = spread_frames(trajectories, 5)
    assert frames.positions == ((0, 0), (0, 12), (1, 0), (1, 11), (1, 23))  # 47 / 4 apart, rounded
    np.testing.assert_array_equal(frames.observations[3], trajectories.observations[1, 11])
    assert frames.ram is None  # Procgen has no console RAM
    assert len(spread_frames(trajectories, 1000).positions) == 48  # never more than there are


def test_the_card_of_the_bundled_agent(played):
    agent, trajectories = played
    example = agent.preprocess(trajectories.observations[0, :1])
    layer = default_layer(discover_layers(agent.traceable(), example))
    methods = [method_class(name)() for name in ("ig", "gradient", "gradcam", "attention-tree")]
    chosen = card_methods(agent.model, methods, layer)
    assert [(c.method.info.name, c.site) for c in chosen] == [("ig", "2b"), ("gradient", "input"), ("gradcam", "2b")]
    frames = spread_frames(trajectories, 6)
    card = report_card(agent, agent.env_spec, frames, chosen, EvaluationConfig(report_steps=8), seed=0)

    assert card.output == "value" and card.frames == frames.positions and card.steps == 8
    assert card.randomised == randomisable_layers(agent.model) and len(card.randomised) == 18
    assert card.object_chance is None and card.objects == ""  # no ground truth on CoinRun
    assert [row.method for row in card.rows] == ["ig", "gradient", "gradcam"]
    for row in card.rows:
        assert len(row.sanity_spearman) == len(row.sanity_ssim) == 18
        assert all(-1 <= r <= 1 for r in row.sanity_spearman)
        assert len(row.frame_deletion) == len(row.frame_insertion) == 6
        assert row.deletion_auc == pytest.approx(np.mean(row.frame_deletion), rel=1e-3)
        assert set(row.passes).isdisjoint(row.fails) and set(row.passes) | set(row.fails) <= set(CHECKS)
        assert row.object_mass is None and row.pointing is None and row.categories == ()
    ig, gradient, _ = card.rows
    # integrated gradients at 2b sum to the value's change from a zero activation (measured 0.5-0.8%)
    assert ig.completeness is not None and ig.completeness < 0.05 and "completeness" in ig.passes
    assert gradient.completeness is None
    # blurring integrated gradients' most important pixels first lowers the value faster than random
    # maps do, on every frame here (measured 5.7 against 6.4 on 4 frames)
    assert ig.deletion_auc < card.random_deletion_auc and ig.insertion_auc > card.random_insertion_auc
    # the fully randomised network's maps no longer rank pixels as the trained one's (measured |rho| < 0.3)
    assert abs(ig.sanity_spearman[-1]) < 0.5 and "sanity" in ig.passes
    text = format_card(card)
    assert "Integrated gradients" in text and "random map deletion" in text and "n/a" in text
