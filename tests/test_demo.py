"""The bundled demo agent ships inside the package and works with every landed command."""

import json

from understanding_rl_vision.agents import load_checkpoint, read_checkpoint_metadata
from understanding_rl_vision.cli import main
from understanding_rl_vision.demo import bundled_agent_path


def test_bundled_agent_is_package_data_and_small():
    path = bundled_agent_path()
    assert path is not None
    with path.open("rb") as handle:
        size = len(handle.read())
    assert size < 5 * 2**20
    meta = read_checkpoint_metadata(path)
    assert meta["architecture"]["name"] == "impala"
    assert meta["env_spec"]["game"] == "coinrun" and meta["env_spec"]["distribution_mode"] == "easy"
    assert meta["extra"]["steps_trained"] == 4_194_304
    agent = load_checkpoint(path)
    assert agent.action_names[:3] == ("LEFT+DOWN", "LEFT", "LEFT+UP")


def test_evaluate_bundled_agent_for_a_few_episodes(capsys):
    assert main(["evaluate", "bundled", "--episodes", "8", "--num-envs", "8", "--json", "--no-progress"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["episodes"] == 8
    assert 0.0 <= result["mean_return"] <= 10.0
    assert 0.0 <= result["level_completion_rate"] <= 1.0
    assert result["env"] == "procgen:coinrun"
