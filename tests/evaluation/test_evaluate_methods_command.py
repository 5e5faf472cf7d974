"""``evaluate-methods CKPT``: plays, judges, prints a table or one JSON object; bad input is one
``error:`` line and status 2."""

import json

import pytest

from understanding_rl_vision.cli import main


def test_a_checkpoint_card_as_json(capsys):
    code = main(
        [
            *("evaluate-methods", "bundled", "--methods", "gradient,gradcam", "--frames", "3", "--num-envs", "1"),
            *("--num-steps", "8", "--report-steps", "4", "--json", "--quiet"),
        ]
    )
    assert code == 0
    card = json.loads(capsys.readouterr().out)
    assert [row["method"] for row in card["rows"]] == ["gradient", "gradcam"]
    assert card["frames"] == [[0, 0], [0, 4], [0, 7]] and card["steps"] == 4
    assert all(len(row["frame_insertion"]) == 3 for row in card["rows"])


def test_the_table_names_the_references(capsys):
    assert (
        main(
            [
                *("evaluate-methods", "bundled", "--methods", "gradient", "--frames", "2", "--num-steps", "4"),
                *("--num-envs", "1", "--quiet"),
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert out.splitlines()[0].split()[:2] == ["method", "site"] and "Gradient" in out
    assert "random map deletion" in out and "centre-bias map" in out


@pytest.mark.parametrize(
    "argv, message",
    [
        (["bundled", "--methods", "nosuch"], "unknown method 'nosuch'"),
        (["bundled", "--frames", "0"], "must be positive integers"),
        (["bundled", "--methods", "attention"], "none of these methods makes maps for this agent"),
        (["bundled", "--report-blur", "-1"], "report_blur must be positive"),
        (["/nonexistent/agent.safetensors"], "error:"),
    ],
)
def test_bad_input_is_one_error_line(argv, message, capsys):
    assert main(["evaluate-methods", *argv, "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and message in err and len(err.strip().splitlines()) == 1
