"""Where the features come from: a finished run's manifest (checked against the agent), or a
fit made as a run makes it; and how a feature is named on the command line."""

from __future__ import annotations

import dataclasses
import shutil

import numpy as np
import pytest

from understanding_rl_vision.agents import load_agent, load_checkpoint
from understanding_rl_vision.config import RunConfig
from understanding_rl_vision.contract import read_manifest
from understanding_rl_vision.contract.writer import write_manifest
from understanding_rl_vision.demo import resolve_checkpoint
from understanding_rl_vision.editing.basis import basis_from_run, select_features, with_names
from understanding_rl_vision.errors import UserError
from understanding_rl_vision.pipeline.basis import find_layer, fit_basis


@pytest.fixture(scope="module")
def agent(checkpoint):
    return load_checkpoint(checkpoint)


def test_a_run_gives_its_layers_features(agent, tiny_run):
    manifest = read_manifest(tiny_run / "data")
    default = basis_from_run(agent, tiny_run)
    assert (default.label, default.layer, default.manifest_layer) == ("3c", "relu", 1)  # the run's default layer
    basis = basis_from_run(agent, tiny_run / "data", "stacks.1.res1")  # the data folder, a dotted name
    assert dataclasses.replace(basis, source="") == dataclasses.replace(
        basis_from_run(agent, tiny_run, "2b"), source=""
    )
    assert basis.directions == tuple(f.direction for f in manifest.layers[0].features)
    assert len(basis.directions) == 3 and all(len(d) == 32 for d in basis.directions)
    assert basis.names == ("feature 1", "feature 2", "feature 3")
    with pytest.raises(UserError, match="has no layer '1a'; its layers: 2b=stacks.1.res1, 3c=relu"):
        basis_from_run(agent, tiny_run, "1a")
    with pytest.raises(UserError, match="is not a finished run"):
        basis_from_run(agent, tiny_run.parent)


def test_a_fit_without_a_run_finds_the_runs_features(agent, tiny_run, tiny_settings):
    config = RunConfig().replace(**tiny_settings)
    layer = find_layer(agent, "2b", config)
    assert (layer.name, layer.label) == ("stacks.1.res1", "2b") and find_layer(agent, "", config).label == "3c"
    components = fit_basis(agent, layer, config, progress=False)
    stored = np.array([f.direction for f in read_manifest(tiny_run / "data").layers[0].features])
    assert np.allclose(components, stored, atol=1e-6)  # feature k is feature k, as the run numbers them
    with pytest.raises(UserError, match="no layer 'fc' among this agent's layers"):
        find_layer(agent, "fc")


def test_a_run_of_another_agent_is_refused(tiny_run):
    other = load_agent(resolve_checkpoint("bundled:breakout-attention"))
    with pytest.raises(UserError, match="was made from another agent: its actions are"):
        basis_from_run(other, tiny_run)


def test_a_run_without_directions_says_to_rebuild_it(agent, tiny_run, tmp_path):
    old = tmp_path / "old"
    shutil.copytree(tiny_run / "data", old / "data")
    manifest = read_manifest(old / "data")
    layers = tuple(
        dataclasses.replace(layer, features=tuple(dataclasses.replace(f, direction=()) for f in layer.features))
        for layer in manifest.layers
    )
    write_manifest(old / "data", dataclasses.replace(manifest, layers=layers))
    with pytest.raises(UserError, match="predates feature directions .* rebuild it"):
        basis_from_run(agent, old)


def test_features_are_chosen_by_number_or_name(agent, tiny_run):
    basis = with_names(basis_from_run(agent, tiny_run, "2b"), {"2b": {2: "Coin"}, "relu": {1: "elsewhere"}})
    assert basis.names == ("feature 1", "Coin", "feature 3")
    assert select_features(basis, ["3", "coin", "Coin", "feature 1", "2"]) == [2, 1, 0]
    assert basis.describe(1) == "feature 2 (Coin)" and basis.describe(0) == "feature 1"
    with pytest.raises(UserError, match="has features 1 to 3, not 4"):
        select_features(basis, ["4"])
    with pytest.raises(UserError, match="'saw' is not a feature of layer 2b; its features: 1=feature 1, 2=Coin"):
        select_features(basis, ["saw"])
    with pytest.raises(UserError, match="names feature 5 of layer 2b, which has 3"):
        with_names(basis, {"stacks.1.res1": {5: "far"}})
    twice = with_names(basis, {"2b": {1: "Saw", 3: "SAW"}})
    assert select_features(twice, ["SAW"]) == [2]  # an exact match first
    with pytest.raises(UserError, match="'saw' is ambiguous"):
        select_features(twice, ["saw"])
