"""Evaluation: exact episode counts, a random baseline, held-out levels, and the CLI."""

from __future__ import annotations

import importlib
import json
import math

import numpy as np
import pytest
import torch

from understanding_rl_vision.agents import load_checkpoint
from understanding_rl_vision.cli import main
from understanding_rl_vision.envs import AtariSpec, ProcgenSpec, make_vec_env
from understanding_rl_vision.training import evaluate
from understanding_rl_vision.training.evaluate import _play, held_out

# ``training.evaluate`` is also the name of the function, which ``import ... as`` would return.
EVALUATE_MODULE = importlib.import_module("understanding_rl_vision.training.evaluate")


class Recorder:
    """An env that keeps what was done with it: the observations each action was chosen on
    (``obs[t]`` for ``actions[t]``), and every step's rewards and episode ends, so that tests
    can recount episodes from the raw rewards instead of trusting the env's Episode records."""

    def __init__(self, env):
        self.env, self.obs, self.actions, self.rewards, self.ends = env, [], [], [], []

    def __getattr__(self, name):
        return getattr(self.env, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.env.close()

    def reset(self):
        step = self.env.reset()
        self.obs.append(step.obs)
        return step

    def step(self, actions):
        self.actions.append(np.array(actions))
        step = self.env.step(actions)
        self.rewards.append(step.reward)
        self.ends.append(step.first)  # first after a step: that action ended an episode
        self.obs.append(step.obs)
        return step

    def first_episodes(self, quotas):
        """Per env, its first ``quotas[i]`` episodes as (return, length), summed from the rewards;
        checks that play stopped on the step that ended the last episode any quota needed."""
        rewards, ends = np.array(self.rewards, np.float64), np.array(self.ends)
        episodes, last_needed = [], 0
        for i, quota in enumerate(quotas):
            stops = np.flatnonzero(ends[:, i])[:quota]
            assert len(stops) == quota, f"env {i} ended {len(stops)} episodes, needed {quota}"
            starts = np.concatenate([[0], stops[:-1] + 1])
            episodes.append([(rewards[a : b + 1, i].sum(), b + 1 - a) for a, b in zip(starts, stops)])
            last_needed = max(last_needed, stops[-1])
        assert len(self.rewards) == last_needed + 1
        return episodes

    def returns(self, quotas):
        return np.array([r for env in self.first_episodes(quotas) for r, _ in env])

    def argmax_share(self, agent, steps: int = 64) -> float:
        """How often the action taken in the first ``steps`` steps was the agent's argmax,
        recomputed on the same batches (so on the same bits as evaluate's own forward passes)."""
        actions = self.actions[:steps]
        with torch.no_grad():
            best = [agent(obs).logits.argmax(-1).numpy() for obs in self.obs[: len(actions)]]
        return float(np.mean(np.concatenate(best) == np.concatenate(actions)))


@pytest.fixture
def recorded(monkeypatch):
    """Every env evaluate opens, recorded, in order: the agent's, then the random policy's."""
    envs = []
    real = EVALUATE_MODULE.open_env

    def open_recorded(*args, **kwargs):
        envs.append(Recorder(real(*args, **kwargs)))
        return envs[-1]

    monkeypatch.setattr(EVALUATE_MODULE, "open_env", open_recorded)
    return envs


def test_without_a_baseline_only_the_agent_plays(leaper_run, recorded):
    path = leaper_run / "checkpoint.safetensors"
    result = evaluate(path, episodes=3, num_envs=3, seed=0, progress=False, baseline=False)
    (agent_env,) = recorded  # no env opened for a random policy
    assert result.mean_return == pytest.approx(agent_env.returns([1, 1, 1]).mean(), rel=1e-12)
    assert math.isnan(result.random_mean_return) and math.isnan(result.random_std_return)
    assert result.random_level_completion_rate is None


def test_evaluate_reports_each_envs_first_episodes_summed_from_their_rewards(leaper_run, recorded):
    path = leaper_run / "checkpoint.safetensors"
    result = evaluate(path, episodes=6, num_envs=4, seed=0, progress=False)
    assert (result.episodes, result.num_envs, result.seed, result.greedy) == (6, 4, 0, False)
    assert result.env == "procgen:leaper" and "held out" in result.levels
    agent_env, random_env = recorded
    np.testing.assert_array_equal(agent_env.obs[0], random_env.obs[0])  # same seed: the same levels
    quotas = [2, 2, 1, 1]  # 6 episodes over 4 envs
    for env, mean, std, completion in [
        (agent_env, result.mean_return, result.std_return, result.level_completion_rate),
        (random_env, result.random_mean_return, result.random_std_return, result.random_level_completion_rate),
    ]:
        returns = env.returns(quotas)
        assert mean == pytest.approx(returns.mean(), rel=1e-12)
        assert std == pytest.approx(returns.std(), rel=1e-12)
        # Leaper pays 10 for reaching the finish, which completes the level, and nothing else.
        assert completion == np.mean(returns > 0)
    # Seed 0 gives both outcomes (measured: 1 of 6 completed by each policy), so the recounts are
    # not of zeros only. Asserted for the random side, which does not depend on the trained
    # weights and so plays the same episodes on any machine.
    assert 0 < result.random_level_completion_rate < 1
    assert json.loads(json.dumps(result.to_dict())) == result.to_dict()


def test_each_env_contributes_its_first_episodes_whatever_their_length():
    class Bar:
        def update(self):
            pass

    rng = np.random.default_rng(0)
    with Recorder(make_vec_env("leaper", num_envs=3, seed=5, distribution_mode="easy")) as env:
        episodes = _play(env, lambda obs, first: rng.integers(15, size=len(obs)), [3, 2, 2], Bar())
        expected = env.first_episodes([3, 2, 2])
        ended = np.array(env.ends).sum(0)
    assert [sum(e.env_index == i for e in episodes) for i in range(3)] == [3, 2, 2]
    for i in range(3):  # in order, with the returns and lengths the rewards give
        assert [(e.total_reward, e.length) for e in episodes if e.env_index == i] == expected[i]
    # Some env ended more episodes than its quota while another still played: the extra ones,
    # which a first-N-to-end rule would have counted, were left out.
    assert (ended > [3, 2, 2]).any(), ended


def test_held_out_levels():
    spec, levels = held_out(ProcgenSpec(game="coinrun", num_levels=200, start_level=10))
    assert (spec.num_levels, spec.start_level) == (0, 210) and "10..209" in levels
    assert held_out(ProcgenSpec())[0] == ProcgenSpec()
    assert held_out(AtariSpec())[0] == AtariSpec()


def test_cli_json_is_one_object_equal_to_the_api_and_seeded(leaper_run, recorded, capsys):
    path = leaper_run / "checkpoint.safetensors"
    # Seed 2: short episodes (measured: 35 agent and 22 random steps), one of two completed by each.
    argv = ["evaluate", str(path), "--episodes", "2", "--num-envs", "2", "--seed", "2", "--json", "--quiet"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert len(out.strip().splitlines()) == 1
    printed = json.loads(out)
    direct = evaluate(path, episodes=2, num_envs=2, seed=2, progress=False).to_dict()
    assert printed.pop("seconds") > 0 and direct.pop("seconds") > 0
    # The same seed on one machine plays the same episodes, so the numbers are equal to the bit.
    assert printed == direct
    assert (printed["episodes"], printed["seed"], printed["greedy"]) == (2, 2, False)
    cli_agent, cli_random, api_agent, api_random = recorded
    for cli, api in ((cli_agent, api_agent), (cli_random, api_random)):
        np.testing.assert_array_equal(np.array(cli.actions), np.array(api.actions))
    # Sampled, not greedy: a one-update agent is near uniform over 15 actions, so its argmax is
    # taken about 1 time in 15 (the argmax share is 1.0 under --greedy, see the table test).
    assert cli_agent.argmax_share(load_checkpoint(path)) < 0.5
    # Another seed plays other levels.
    evaluate(path, episodes=1, num_envs=1, seed=1, progress=False)
    assert not np.array_equal(recorded[4].obs[0][0], cli_agent.obs[0][0])


def test_cli_table_compares_agent_and_random(leaper_run, recorded, capsys):
    path = leaper_run / "checkpoint.safetensors"
    # Greedy, this agent never finishes (500-step timeouts); seed 2 keeps the random side short.
    argv = ["evaluate", str(path), "--episodes", "2", "--num-envs", "2", "--seed", "2", "--greedy", "--quiet"]
    assert main(argv) == 0
    lines = capsys.readouterr().out.splitlines()
    agent_env, random_env = recorded
    assert agent_env.argmax_share(load_checkpoint(path)) == 1.0  # --greedy: every action the argmax
    agent, random = agent_env.returns([1, 1]), random_env.returns([1, 1])

    def rate(returns):  # Leaper completes a level exactly when it pays (10)
        return f"{100 * np.mean(returns > 0):.1f}%"

    assert lines[0].startswith("procgen:leaper: held out: ") and "; greedy actions, " in lines[0]
    assert [line.split() for line in lines[1:]] == [
        ["agent", "random"],
        ["episodes", "2", "2"],
        ["mean", "return", f"{agent.mean():.2f}", f"{random.mean():.2f}"],
        ["std", "return", f"{agent.std():.2f}", f"{random.std():.2f}"],
        ["level", "completion", rate(agent), rate(random)],
    ]


def test_cli_bundled_agent_missing_is_one_line(monkeypatch, capsys):
    from understanding_rl_vision import demo

    monkeypatch.setattr(demo, "bundled_agent_path", lambda: None)
    assert main(["evaluate", "bundled"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "lacks the bundled demo agent" in err
