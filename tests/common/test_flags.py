"""The one flag generator: flat and nested dataclasses, every kind of field, only given flags."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Literal

import pytest

from understanding_rl_vision.common.flags import (
    add_config_flags,
    field_docs,
    flat_fields,
    settings_from_args,
)


@dataclass(frozen=True)
class Inner:
    steps: int = 10
    """Integration steps."""
    rule: Literal["riemann", "gauss-legendre"] = "riemann"
    """Quadrature, 100% documented."""


@dataclass(frozen=True)
class Outer:
    inner: Inner = Inner()
    layers: tuple[str, ...] = ("2b",)
    """Layers by label."""
    mults: tuple[float, ...] = (0.5, 1.0)
    """Zoom levels."""
    gamma: float | None = None
    """Discount; None takes the checkpoint's."""
    overlay: bool = True
    """Draw over the observation."""


def parser_for(cls: type) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(exit_on_error=False)
    parser.add_argument("--quiet", action="store_true")
    add_config_flags(parser, cls, "top")
    return parser


def test_nested_groups_are_flattened_and_documented():
    assert flat_fields(Outer) == {
        "steps": ("inner", Inner),
        "rule": ("inner", Inner),
        "layers": (None, Outer),
        "mults": (None, Outer),
        "gamma": (None, Outer),
        "overlay": (None, Outer),
    }
    assert field_docs(Outer)["rule"] == "Quadrature, 100% documented."
    help_text = " ".join(parser_for(Outer).format_help().split())
    assert "inner settings:" in help_text and "top settings:" in help_text
    assert "--steps INT Integration steps. (default: 10)" in help_text
    assert "Quadrature, 100% documented. (default: riemann)" in help_text
    assert "--layers A,B,... Layers by label. (default: 2b)" in help_text
    assert "--gamma FLOAT Discount; None takes the checkpoint's. (default: None)" in help_text
    assert "--overlay, --no-overlay" in help_text


def test_only_given_flags_become_typed_settings():
    parser = parser_for(Outer)
    assert settings_from_args(parser.parse_args(["--quiet"])) == {}
    args = parser.parse_args(
        [
            "--steps",
            "4",
            "--rule",
            "gauss-legendre",
            "--layers",
            "2b,3a",
            "--mults",
            "1,2",
            "--gamma",
            "0.9",
            "--no-overlay",
        ]
    )
    assert settings_from_args(args) == {
        "steps": 4,
        "rule": "gauss-legendre",
        "layers": ("2b", "3a"),
        "mults": (1.0, 2.0),
        "gamma": 0.9,
        "overlay": False,
    }


@pytest.mark.parametrize("argv", [["--rule", "simpson"], ["--steps", "many"], ["--gamma", "x"]])
def test_bad_values_are_refused_by_the_parser(argv):
    with pytest.raises(argparse.ArgumentError):
        parser_for(Outer).parse_args(argv)


def test_a_field_declared_in_two_groups_is_a_bug():
    @dataclass(frozen=True)
    class Twice:
        inner: Inner = Inner()
        steps: int = 3

    with pytest.raises(AssertionError, match="steps is declared twice"):
        flat_fields(Twice)
