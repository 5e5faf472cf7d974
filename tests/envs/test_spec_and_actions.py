"""Pure-Python parts: parsing names, spec round trips, action grouping."""

from __future__ import annotations

import json

import pytest

from understanding_rl_vision.envs import (
    AtariSpec,
    GymnasiumSpec,
    ProcgenSpec,
    action_groups,
    make_vec_env,
    parse_env_id,
    spec_from_dict,
    spec_to_dict,
)
from understanding_rl_vision.envs.procgen import action_name
from understanding_rl_vision.errors import UnknownEnvError

PROCGEN_NAMES = tuple(
    action_name(combo)
    for combo in [
        ("LEFT", "DOWN"),
        ("LEFT",),
        ("LEFT", "UP"),
        ("DOWN",),
        (),
        ("UP",),
        ("RIGHT", "DOWN"),
        ("RIGHT",),
        ("RIGHT", "UP"),
        ("D",),
        ("A",),
        ("W",),
        ("S",),
        ("Q",),
        ("E",),
    ]
)


def test_procgen_action_groups():
    groups = action_groups(PROCGEN_NAMES)
    left_up = PROCGEN_NAMES.index("LEFT+UP")
    assert left_up in groups["LEFT"] and left_up in groups["UP"]
    assert left_up not in groups["RIGHT"] and left_up not in groups["DOWN"]
    assert PROCGEN_NAMES.index("NOOP") in groups["no-arrow"]
    assert groups["no-arrow"] == tuple(PROCGEN_NAMES.index(n) for n in ("NOOP", "D", "A", "W", "S", "Q", "E"))
    assert groups["RIGHT"] == (6, 7, 8)


def test_atari_action_groups():
    names = ("NOOP", "FIRE", "UP", "RIGHT", "UPRIGHT", "UPRIGHTFIRE", "DOWNLEFTFIRE")
    groups = action_groups(names)
    assert groups["UP"] == (2, 4, 5)
    assert groups["RIGHT"] == (3, 4, 5)
    assert groups["LEFT"] == (6,) and groups["DOWN"] == (6,)
    assert groups["no-arrow"] == (0, 1)


def test_vec_env_exposes_action_groups():
    with make_vec_env("ALE/Breakout-v5") as env:
        assert env.action_groups == {"RIGHT": (2,), "LEFT": (3,), "no-arrow": (0, 1)}


@pytest.mark.parametrize(
    ("name", "spec"),
    [
        ("coinrun", ProcgenSpec(game="coinrun")),
        ("procgen:bigfish", ProcgenSpec(game="bigfish")),
        ("ALE/Breakout-v5", AtariSpec(game="Breakout")),
        ("atari:Pong", AtariSpec(game="Pong")),
        ("BreakoutNoFrameskip-v4", AtariSpec(game="Breakout")),
        ("CartPole-v1", GymnasiumSpec(env_id="CartPole-v1")),
    ],
)
def test_parse_env_id(name, spec):
    assert parse_env_id(name) == spec


def test_parse_env_id_options_and_unknown_names():
    assert parse_env_id("coinrun", distribution_mode="easy").distribution_mode == "easy"
    with pytest.raises(UnknownEnvError, match="did you mean coinrun"):
        parse_env_id("coinrn")
    with pytest.raises(UnknownEnvError, match="do not apply"):
        parse_env_id("coinrun", frame_skip=4)


@pytest.mark.parametrize(
    "spec",
    [
        ProcgenSpec(game="maze", distribution_mode="easy", num_levels=3, start_level=9, full_res_frames=True),
        AtariSpec(game="Pong", sticky_action_prob=0.0, frame_stack=2),
        GymnasiumSpec(env_id="understanding_rl_vision/DotGrid-v0", make_kwargs=(("cells", 5), ("grey", True))),
    ],
)
def test_spec_dict_round_trip(spec):
    data = json.loads(json.dumps(spec_to_dict(spec)))
    assert spec_from_dict(data) == spec


def test_make_vec_env_accepts_a_spec_but_not_options_with_it():
    spec = ProcgenSpec(game="coinrun", distribution_mode="easy")
    with make_vec_env(spec, num_envs=2) as env:
        assert env.spec == spec and env.num_envs == 2
    with pytest.raises(TypeError, match="only apply to an environment name"):
        make_vec_env(spec, distribution_mode="hard")
