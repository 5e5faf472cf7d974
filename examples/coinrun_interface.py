"""The bundled CoinRun agent, explained three ways, with a report card: one call to ``rl_clarity.run``.

What it shows: ``rl_clarity.run`` on the agent shipped with the package, with integrated gradients
(the original's method, per NMF feature), Grad-CAM (a heat map at each layer) and perturbation
saliency (blurred discs at the input) of the value and of the action taken, plus the faithfulness
report card (``report_frames``): which of those maps survive the sanity check and the deletion and
insertion tests. Open the printed ``interface.html`` in a browser (it works from disk).

Needs: nothing beyond the package (the agent is package data).

Time on 2 CPU cores: about 2 minutes at full size (2 trajectories of 256 frames, every layer,
1,024 observations for the features, a card on 8 frames; 52 MB with its cache); about 15 seconds
with RLV_EXAMPLE_QUICK=1.

    python examples/coinrun_interface.py            # writes examples-output/coinrun-interface/
"""

from __future__ import annotations

from _quick import QUICK, output_dir

from understanding_rl_vision import rl_clarity
from understanding_rl_vision.contract import read_manifest
from understanding_rl_vision.demo import resolve_checkpoint
from understanding_rl_vision.evaluation.report import format_card

# "bundled" names the demo's CoinRun agent, as on the command line; the function turns it into the
# path of the file shipped with the package (rl_clarity.run itself takes a path).
checkpoint = resolve_checkpoint("bundled")
out = output_dir("coinrun-interface")

if QUICK:  # tiny: checks that everything runs, shows little
    size = dict(num_envs=1, num_steps=12, obs_num_envs=2, num_obs=4, obs_every=4, layers=("2b",))
    size |= dict(nmf_features=2, num_bookmarks=1, report_frames=2, report_steps=2)
else:  # the demo's sample: 2 trajectories of 256 frames, features fitted on 1,024 observations
    size = dict(num_envs=2, num_steps=256, obs_num_envs=16, num_obs=64, obs_every=32, report_frames=8)

result = rl_clarity.run(
    checkpoint,
    out / "vision",
    methods=("ig", "gradcam", "perturbation"),  # the page's method menu, in this order
    explain=("value", "action"),  # the critic, and the logit of the action taken at each frame
    overwrite=True,  # a rerun replaces the folder this script wrote before (and reuses the cache)
    progress=not QUICK,
    **size,
)
print(f"interface: {result.path}")

# The report card is in the run's manifest (the page shows it too, under "Report card").
# `understanding-rl-vision evaluate-methods <run folder>` prints the same table.
card = read_manifest(result.directory / "data").report
print(format_card(card))
