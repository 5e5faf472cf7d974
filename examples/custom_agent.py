"""Your own ``nn.Module`` as an agent, explained by every method that applies, in one PNG grid.

What it shows: ``custom_agent`` wraps any module (here an IMPALA network written as CleanRL's
``ppo_procgen.py`` writes it) given functions for its shared trunk, its logits and its value; then
``attribution.attribute`` explains the value at one CoinRun frame with each method of
``attribution.methods.REGISTRY``, skipping those whose ``MethodInfo`` says they cannot make a map
here (the attention methods need an attention agent; the attention tree is a tree, not a map).
Layer methods read the default (middle) layer, found on the traced graph, input methods the
pixels; ``channels`` methods are summed over channels. The module is untrained, so the maps show
the wiring, not a strategy: put your trained module (``net.load_state_dict(...)``) in its place.

Needs: matplotlib (``pip install matplotlib``).

Time on 2 CPU cores: about 5 seconds at full size (a 64-step rollout, every method on one frame);
about the same with RLV_EXAMPLE_QUICK=1 (8 steps, fewer noisy and perturbed copies).

    python examples/custom_agent.py                 # writes examples-output/custom-agent/methods.png
"""

from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")  # files only, no window
import matplotlib.pyplot as plt
import torch
from _quick import QUICK, output_dir
from torch import nn

from understanding_rl_vision.agents import custom_agent
from understanding_rl_vision.attribution import attribute, default_layer, discover_layers
from understanding_rl_vision.attribution.methods import REGISTRY
from understanding_rl_vision.config import TrajectoryConfig
from understanding_rl_vision.rollout import collect_trajectories


# --- your network: nothing here knows about this package ------------------------------------
class Residual(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.conv0 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv1(torch.relu(self.conv0(torch.relu(x))))


class Stack(nn.Module):
    def __init__(self, inputs: int, outputs: int):
        super().__init__()
        self.conv = nn.Conv2d(inputs, outputs, 3, padding=1)
        self.res_block0 = Residual(outputs)
        self.res_block1 = Residual(outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = nn.functional.max_pool2d(self.conv(x), kernel_size=3, stride=2, padding=1)
        return self.res_block1(self.res_block0(x))


class Net(nn.Module):
    def __init__(self, actions: int = 15):
        super().__init__()
        self.network = nn.Sequential(
            Stack(3, 16), Stack(16, 32), Stack(32, 32), nn.Flatten(), nn.ReLU(), nn.Linear(32 * 8 * 8, 256), nn.ReLU()
        )
        self.actor = nn.Linear(256, actions)
        self.critic = nn.Linear(256, 1)


torch.manual_seed(0)
net = Net().eval()

# --- wrap it: which part runs once per batch, and which heads give the logits and the value --
agent = custom_agent(
    net,
    features=net.network,  # preprocessed input (N, 3, 64, 64) in [0, 1] -> hidden
    logits=net.actor,  # hidden -> (N, 15)
    value=net.critic,  # hidden -> (N, 1)
    env="coinrun",  # observation shape and action names come from the environment
)

# --- one frame of the agent's own play ------------------------------------------------------
steps = 8 if QUICK else 64
played = collect_trajectories(agent, TrajectoryConfig(num_envs=1, num_steps=steps), seed=0, progress=False)
frame = played.observations[0, -1:]  # (1, 64, 64, 3) uint8

# --- the layers: found on the agent's traced graph, labelled by resolution stage -------------
# (traced through agent.traceable(): Net has no forward of its own, as CleanRL's agents have none)
layers = discover_layers(agent.traceable(), agent.preprocess(frame))
print("layers:", ", ".join(f"{layer.label}={layer.name}" for layer in layers))
layer = default_layer(layers)  # the middle one, as the page opens on

# --- every method that can draw a map of this agent -----------------------------------------
maps = {}
for name, method_type in REGISTRY.items():
    info = method_type.info
    if info.produces == "tree" or not method_type.applies_to(agent.model):
        print(f"skip {name}: {'a tree, not a map' if info.produces == 'tree' else 'needs an attention agent'}")
        continue
    settings = {}
    if QUICK and "noise_samples" in {f.name for f in method_type.flag_fields()}:
        settings["noise_samples"] = 4  # SmoothGrad and its kin: fewer noisy copies
    if QUICK and name == "perturbation":
        settings["perturbation_stride"] = 16  # fewer blurred discs
    site = layer if info.attaches == "layer" else None  # None: the input, for input methods
    result = attribute(agent, frame, site, ["value"], method=method_type(**settings))
    values = result.values[0, 0]  # (C, h, w) for channels methods, (h, w) for maps
    maps[f"{info.title}\n({layer.label if site else 'input'})"] = (
        values.sum(0) if info.produces == "channels" else values
    )
    print(f"{name:>18}: {info.produces} at {result.layer}, shape {tuple(result.values.shape)}")

# --- the grid: the frame, then one panel per method, each drawn over the frame --------------
columns = 4
rows = math.ceil((len(maps) + 1) / columns)
figure, axes = plt.subplots(rows, columns, figsize=(3 * columns, 3.3 * rows))
axes = axes.ravel()
height, width = frame.shape[1:3]
axes[0].imshow(frame[0])
axes[0].set_title("frame")
for axis, (title, values) in zip(axes[1:], maps.items()):
    limit = float(values.abs().max()) or 1.0
    axis.imshow(frame[0], alpha=0.5)
    axis.imshow(values, cmap="bwr", vmin=-limit, vmax=limit, alpha=0.7, extent=(0, width, height, 0))
    axis.set_title(title, fontsize=9)
for axis in axes:
    axis.axis("off")
figure.suptitle("value attribution of an untrained custom agent, every method that applies")
figure.tight_layout()
path = output_dir("custom-agent") / "methods.png"
figure.savefig(path, dpi=80)
print(f"wrote {path}: {len(maps)} methods")
