"""Which explanation to believe: the faithfulness report card of two methods, as a table.

What it shows: integrated gradients and Grad-CAM of the bundled CoinRun agent's value, both at layer
2b, judged on the same frames of its own play (what ``understanding-rl-vision evaluate-methods`` does,
through the functions it uses): the cascading randomisation sanity check (a map that explains the
trained network should change when its layers are re-initialised), deletion and insertion AUC
against a random map (blurring the pixels a faithful map ranks first should move the value fastest),
and integrated gradients' completeness. docs/report-card.md reads the full card.

Needs: nothing beyond the package.

Time on 2 CPU cores: about 10 seconds at full size (2 trajectories of 128 steps, 16 frames judged,
16-point curves, as ``evaluate-methods`` by default); about 5 seconds with RLV_EXAMPLE_QUICK=1.

    python examples/compare_methods.py              # prints the table
"""

from __future__ import annotations

import numpy as np
from _quick import QUICK

from understanding_rl_vision.agents import load_agent
from understanding_rl_vision.attribution import resolve_layers
from understanding_rl_vision.attribution.methods import method_class
from understanding_rl_vision.config import EvaluationConfig, TrajectoryConfig
from understanding_rl_vision.demo import resolve_checkpoint
from understanding_rl_vision.evaluation.report import card_methods, format_card, report_card, spread_frames
from understanding_rl_vision.rollout import collect_trajectories

agent = load_agent(resolve_checkpoint("bundled"))  # the demo's CoinRun agent, shipped with the package

# The layer both methods read, by its label ("2b": the second stage's last residual block).
blank = agent.preprocess(np.zeros((1, *agent.observation_shape), np.uint8))
(layer,) = resolve_layers(agent.traceable(), blank, ["2b"])

# The two methods, with their default settings (method_class(name)(setting=...) changes them).
methods = card_methods(agent.model, [method_class("ig")(), method_class("gradcam")()], layer)

# Frames of the agent's own play, spread evenly over its trajectories.
if QUICK:
    play, count, settings = TrajectoryConfig(num_envs=1, num_steps=16), 2, EvaluationConfig(report_steps=4)
else:  # evaluate-methods' defaults
    play, count, settings = TrajectoryConfig(num_envs=2, num_steps=128), 16, EvaluationConfig()
played = collect_trajectories(agent, play, seed=0, progress=not QUICK)
frames = spread_frames(played, count)

card = report_card(agent, agent.env_spec, frames, methods, settings, seed=0, progress=not QUICK)
print(format_card(card))
