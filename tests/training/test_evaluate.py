"""Evaluation: exact episode counts, a random baseline, held-out levels, and the CLI."""

from __future__ import annotations

import json

import numpy as np

from understanding_rl_vision.cli import main
from understanding_rl_vision.envs import AtariSpec, ProcgenSpec, make_vec_env
from understanding_rl_vision.training import evaluate
from understanding_rl_vision.training.evaluate import _play, held_out


def test_evaluate_a_fresh_checkpoint(leaper_run):
    result = evaluate(leaper_run / "checkpoint.safetensors", episodes=6, num_envs=4, progress=False)
    assert result.episodes == 6 and result.num_envs == 4
    assert result.std_return >= 0 and result.random_std_return >= 0
    assert np.isfinite([result.mean_return, result.random_mean_return]).all()
    assert 0.0 <= result.level_completion_rate <= 1.0
    assert 0.0 <= result.random_level_completion_rate <= 1.0
    assert result.env == "procgen:leaper" and "held out" in result.levels
    assert json.loads(json.dumps(result.to_dict())) == result.to_dict()


def test_each_env_contributes_its_first_episodes_whatever_their_length():
    class Bar:
        def update(self):
            pass

    rng = np.random.default_rng(0)
    with make_vec_env("leaper", num_envs=3, seed=5, distribution_mode="easy") as env:
        episodes = _play(env, lambda obs: rng.integers(15, size=len(obs)), [3, 2, 2], Bar())
    assert [sum(e.env_index == i for e in episodes) for i in range(3)] == [3, 2, 2]


def test_held_out_levels():
    spec, levels = held_out(ProcgenSpec(game="coinrun", num_levels=200, start_level=10))
    assert (spec.num_levels, spec.start_level) == (0, 210) and "10..209" in levels
    assert held_out(ProcgenSpec())[0] == ProcgenSpec()
    assert held_out(AtariSpec())[0] == AtariSpec()


def test_cli_json_prints_exactly_one_object(leaper_run, capsys):
    argv = ["evaluate", str(leaper_run / "checkpoint.safetensors"), "--episodes", "2",
            "--num-envs", "2", "--json", "--no-progress"]  # fmt: skip
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert len(out.strip().splitlines()) == 1
    result = json.loads(out)
    assert result["episodes"] == 2 and result["level_completion_rate"] is not None


def test_cli_table_compares_agent_and_random(leaper_run, capsys):
    argv = ["evaluate", str(leaper_run / "checkpoint.safetensors"), "--episodes", "2",
            "--num-envs", "2", "--greedy", "--no-progress"]  # fmt: skip
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "agent" in out and "random" in out and "level completion" in out


def test_cli_bundled_agent_missing_is_one_line(monkeypatch, capsys):
    from understanding_rl_vision import demo

    monkeypatch.setattr(demo, "bundled_agent_path", lambda: None)
    assert main(["evaluate", "bundled"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "no bundled agent" in err
