"""A run on an attention agent: the methods it calls for are added, their payloads are written and
read back against the manifest, and the video draws the map but leaves the tree to the page."""

from __future__ import annotations

import numpy as np
import pytest

from understanding_rl_vision import rl_clarity
from understanding_rl_vision.agents import load_agent, make_agent, save_checkpoint
from understanding_rl_vision.config import RunConfig
from understanding_rl_vision.contract import check_against_manifest, map_key, read_manifest, read_payload, tree_key
from understanding_rl_vision.demo import bundled_agent_path
from understanding_rl_vision.envs import make_vec_env, parse_env_id
from understanding_rl_vision.errors import UserError
from understanding_rl_vision.pipeline.plan import with_automatic_methods
from understanding_rl_vision.render.video import write_video

SETTINGS = dict(
    progress=False, num_envs=2, num_steps=12, obs_num_envs=2, num_obs=6, obs_every=2, nmf_features=3, num_bookmarks=2
)


@pytest.fixture(scope="module")
def attention_checkpoint(tmp_path_factory):
    """A random two-head attention agent for Breakout (its weights fixed by the seed)."""
    spec = parse_env_id("ALE/Breakout-v5")
    with make_vec_env(spec, num_envs=1, seed=0) as env:
        agent = make_agent("attention", env.spec, env.observation_shape, env.action_names, seed=0, heads=2)
    return save_checkpoint(agent, tmp_path_factory.mktemp("attention") / "attention.safetensors")


@pytest.fixture(scope="module")
def run_dir(attention_checkpoint, tmp_path_factory):
    folder = tmp_path_factory.mktemp("attention-run")
    rl_clarity.run(attention_checkpoint, folder / "out", **SETTINGS)
    return folder / "out"


def test_the_agent_calls_for_its_attention_methods(attention_checkpoint):
    config = with_automatic_methods(load_agent(attention_checkpoint), RunConfig())
    assert config.attribution.methods == ("ig", "attention", "attention-tree")
    assert config.attribution.explain == ("value", "attention")
    chosen = RunConfig().replace(methods=("ig", "smoothgrad"))
    assert with_automatic_methods(load_agent(attention_checkpoint), chosen) == chosen  # chosen methods are kept
    plain = load_agent(bundled_agent_path())
    assert with_automatic_methods(plain, RunConfig()) == RunConfig()
    # the tree's settings may be given with the default methods, which the agent then extends
    config = with_automatic_methods(load_agent(attention_checkpoint), RunConfig().replace(tree_count=2))
    assert config.method_settings.method("attention-tree").tree_count == 2


def test_payloads_agree_with_the_manifest(run_dir):
    data = run_dir / "data"
    manifest = read_manifest(data)
    names = [m.name for m in manifest.methods]
    assert names == ["ig", "attention", "attention-tree"]
    attention = manifest.outputs.index("attention")
    entry = manifest.methods[1]
    assert entry.map_shape == (7, 7) and entry.outputs == (attention,) and not entry.signed
    tree_entry = manifest.methods[2]
    assert tree_entry.produces == "tree" and tree_entry.outputs == (attention,)
    for t in range(2):
        heat = read_payload(data, map_key(entry.key_prefix, -1, t, attention))
        check_against_manifest(manifest, heat)
        assert heat.positive.shape == (12, 7, 7) and not heat.negative.any()
        # two masks, each a distribution: every frame's map sums to 2, up to uint8 quantisation
        assert np.allclose(heat.positive.sum(axis=(1, 2)), 2.0, atol=49 * heat.positive.max() / 255)
        tree = read_payload(data, tree_key(tree_entry.key_prefix, t, attention))
        check_against_manifest(manifest, tree)
        assert tree.levels == ("attention.mask", "normalize", "relu2", "relu1")  # relu3 is rescaled: contributes 0
        assert tree.parent.shape == (12, 3 + 9 + 27 + 81) and tree.boxes.shape == (12, 120, 4)
        roots = tree.level == 0
        assert (tree.parent[roots] == -1).all() and tree.valid[:, :3].any(axis=1).all()
        for level in (1, 2, 3):  # every level below the roots holds nodes in every frame
            assert (tree.valid & (tree.level == level)).any(axis=1).all(), level
        valid_children = tree.valid & ~roots
        parents = np.take_along_axis(tree.level, np.maximum(tree.parent, 0), axis=1)
        assert (parents[valid_children] == tree.level[valid_children] - 1).all()
        assert ((tree.boxes >= 0) & (tree.boxes <= 1)).all()


def test_the_video_draws_the_map_and_leaves_the_tree_to_the_page(run_dir, tmp_path):
    result = write_video(run_dir, tmp_path / "a.gif", frames=3, progress=False)
    assert result.path.exists() and not any("tree" in panel for panel in result.panels)
    assert "Attention · attention" in result.panels
    with pytest.raises(UserError, match="drawn on the page only"):
        write_video(run_dir, tmp_path / "b.gif", methods=("attention-tree",), frames=3, progress=False)
    assert not (tmp_path / "b.gif").exists()
