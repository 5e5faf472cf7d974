"""The feature-names file the page's legend writes: read back, and every malformed case one line."""

from __future__ import annotations

import json

import pytest

from understanding_rl_vision.editing import read_feature_names, write_feature_names
from understanding_rl_vision.editing.names import FORMAT
from understanding_rl_vision.errors import UserError


def names_file(tmp_path, layers, **fields):
    path = tmp_path / "names.json"
    path.write_text(json.dumps({"format": FORMAT, "version": 1, "agent": "a", "layers": layers, **fields}))
    return path


def test_names_round_trip(tmp_path):
    names = {"2b": {1: "coin", 3: "buzzsaw"}, "stacks.2.res1": {2: "enemy ä"}}
    path = write_feature_names(tmp_path / "names.json", names, agent="demo-agent.safetensors")
    assert read_feature_names(path) == names
    data = json.loads(path.read_text())
    assert data["format"] == FORMAT and data["version"] == 1 and data["layers"]["2b"] == {"1": "coin", "3": "buzzsaw"}


def test_the_page_format_reads(tmp_path):
    assert read_feature_names(names_file(tmp_path, {"2b": {"2": " coin "}})) == {"2b": {2: "coin"}}


@pytest.mark.parametrize(
    ("layers", "fields", "message"),
    [
        ({"2b": {"1": 5}}, {}, "must be a string"),
        ({"2b": {"1": ""}}, {}, "is empty"),
        ({"2b": {"1": "   "}}, {}, "is empty"),
        ({"2b": {"1": "x" * 41}}, {}, "over 40 characters"),
        ({"2b": {"0": "coin"}}, {}, "features are numbered 1, 2"),
        ({"2b": {"one": "coin"}}, {}, "features are numbered 1, 2"),
        ({"2b": {"-1": "coin"}}, {}, "features are numbered 1, 2"),
        ({"2b": {"1": "coin", "2": "coin"}}, {}, "names features 1 and 2 both 'coin'"),
        ({"2b": ["coin"]}, {}, "must map feature numbers to names"),
        ([], {}, '"layers" must be an object'),
        ({}, {"format": "something else"}, "not a feature-names file"),
        ({}, {"version": 2}, "version 2"),
        ({"2b": {"1": "a\nb"}}, {}, "spans lines"),
    ],
)
def test_malformed_names_are_one_line_errors(tmp_path, layers, fields, message):
    with pytest.raises(UserError, match=message) as caught:
        read_feature_names(names_file(tmp_path, layers, **fields))
    assert "\n" not in str(caught.value)


def test_files_that_are_not_names(tmp_path):
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(UserError, match="is not JSON"):
        read_feature_names(tmp_path / "bad.json")
    (tmp_path / "list.json").write_text("[1, 2]")
    with pytest.raises(UserError, match="not a feature-names file"):
        read_feature_names(tmp_path / "list.json")
    with pytest.raises(UserError, match="no feature-names file"):
        read_feature_names(tmp_path / "missing.json")
    with pytest.raises(UserError, match="is a directory"):
        read_feature_names(tmp_path)
    (tmp_path / "binary.json").write_bytes(b"\xff\xfe\x00")
    with pytest.raises(UserError, match="not UTF-8"):
        read_feature_names(tmp_path / "binary.json")
    with pytest.raises(UserError, match="is empty"):
        write_feature_names(tmp_path / "out.json", {"2b": {1: ""}})
    assert not (tmp_path / "out.json").exists()
