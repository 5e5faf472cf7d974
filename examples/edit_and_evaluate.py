"""Remove one feature from a layer of the bundled CoinRun agent and compare returns.

What it shows: the Distill article's test of what a feature means. A run's NMF features of layer
2b are directions over the layer's channels (the page's legend numbers them); a ``FeatureEdit``
projects one of them out of the layer's activations with a forward hook; then ``evaluate`` plays the
original and the edited agent on the same held-out levels with the same random numbers (the same
``seed``), so the returns differ only where the edit changed what the agent does. The command-line
equivalents are ``edit`` and ``ablate`` (every feature in turn, with paired 95% intervals); see
docs/editing.md.

Needs: nothing beyond the package.

Time on 2 CPU cores: about 50 seconds at full size (a run of 2 x 256 frames whose features are
fitted on 1,024 observations, then 100 episodes per agent); about 10 seconds with
RLV_EXAMPLE_QUICK=1 (4 episodes each: the two returns are then mostly noise).

    python examples/edit_and_evaluate.py [FEATURE]  # FEATURE: 1-based, as the legend numbers them; default 1
"""

from __future__ import annotations

import copy
import sys

from _quick import QUICK, output_dir

from understanding_rl_vision import rl_clarity
from understanding_rl_vision.agents import load_agent, save_checkpoint
from understanding_rl_vision.agents.edits import FeatureEdit, apply_edits
from understanding_rl_vision.demo import resolve_checkpoint
from understanding_rl_vision.editing.basis import basis_from_run
from understanding_rl_vision.training import evaluate

feature = int(sys.argv[1]) if len(sys.argv) > 1 else 1
checkpoint = resolve_checkpoint("bundled")  # the demo's CoinRun agent, shipped with the package
out = output_dir("edit-and-evaluate")

# 1. A run of layer 2b: its page shows the features, its manifest stores their directions.
if QUICK:
    size = dict(num_envs=1, num_steps=8, obs_num_envs=2, num_obs=8, obs_every=4, nmf_features=3, num_bookmarks=1)
    episodes = 4
else:
    size = dict(num_envs=2, num_steps=256, obs_num_envs=16, num_obs=64, obs_every=32)
    episodes = 100
run = rl_clarity.run(checkpoint, out / "vision", layers=("2b",), overwrite=True, progress=not QUICK, **size)
print(f"features of layer 2b: {run.path}")

# 2. The feature's direction, as the run found it (checked against this agent's layer shape).
agent = load_agent(checkpoint)
basis = basis_from_run(agent, run.directory, "2b")
edit = FeatureEdit(basis.layer, basis.directions[feature - 1], basis.names[feature - 1])

# 3. The edited agent: a copy with the direction projected out of the layer's output.
edited = copy.deepcopy(agent)
apply_edits(edited.model, [edit])
save_checkpoint(edited, out / "edited.safetensors")  # loads edited wherever a checkpoint is accepted

# 4. Both agents on the same levels, with the same random numbers.
before = evaluate(agent, episodes, num_envs=4, seed=0, baseline=False, progress=not QUICK)
after = evaluate(edited, episodes, num_envs=4, seed=0, baseline=False, progress=not QUICK)
print(f"removed {basis.describe(feature - 1)} of layer {basis.label} ({basis.layer}); {episodes} episodes each")
print(f"original return: {before.mean_return:.2f} (completion {before.level_completion_rate:.0%})")
print(f"edited return:   {after.mean_return:.2f} (completion {after.level_completion_rate:.0%})")
