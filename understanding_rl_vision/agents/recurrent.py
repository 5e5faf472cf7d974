"""Recurrent agents: models that carry a state (an LSTM's ``h`` and ``c``) from one step to the next.

What the rest of the package relies on, for any recurrent model (built-in or imported):

* ``state_size`` (S): the state is one flat float32 vector per row, (N, S).
* ``forward(x, state=None) -> (logits, value, next_state)``; ``state`` is the state *entering* this
  step (zeros, an episode's start, when None).
* The incoming state passes through a submodule named :data:`MEMORY` (an ``nn.Identity``), so it can
  be hooked like a layer: integrated gradients substitute scaled copies there to attribute to the
  memory, and perturbation saliency can shrink it.
* Then through :func:`match_rows`: a method may run the network above a layer on ``k`` copies of a
  batch of ``N`` frames (stacked copy-major, as integrated gradients' substituted layer makes them),
  and each copy then reads the state of its own frame.

Where an episode starts the state is reset to zeros (:meth:`~.base.Agent.reset_state`); rollouts store
the incoming state of every step, and every method explains a frame given that stored state.

Optionally a recurrent model splits its forward pass in two, ``encode(x) -> features`` (everything
before the state is read) and ``recur(features, state) -> (logits, value, next_state)``; training then
encodes a whole sequence in one batch and runs only ``recur`` step by step (``training.ppo.replay``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.fx
from torch import nn

from .architectures import ARCHITECTURES, ImpalaCNN, _ActorCritic

MEMORY = "memory"
"""Name of the identity module every recurrent model passes its incoming state through."""


def match_rows(state: torch.Tensor, rows: int) -> torch.Tensor:
    """``state`` (N, S) for a batch of ``rows`` = k x N rows: the N states repeated k times, copy-major."""
    count = state.shape[0]
    if count == rows:
        return state
    if count == 0 or rows % count:
        raise ValueError(f"{count} recurrent states cannot serve a batch of {rows} rows")
    return state.repeat(rows // count, 1)


torch.fx.wrap("match_rows")  # a leaf when layers are found by tracing: its checks need real sizes


class GreydanusLSTM(_ActorCritic):
    """The A3C LSTM network of Greydanus et al. 2018 (seed 001), for 80x80 grey Atari frames.

    Four 3x3 convolutions with stride 2 and padding 1 (80 -> 40 -> 20 -> 10 -> 5), each followed by
    an ELU, then an ``LSTMCell`` (32 x 5 x 5 = 800 -> 256) and linear actor and critic heads. The
    state is ``[h, c]``, 2 x 256 values.
    """

    name = "lstm"
    min_input_size = 1  # padded strided convs never shrink a map below 1x1

    def __init__(
        self,
        observation_shape: Sequence[int],
        num_actions: int,
        channels: int = 32,
        hidden_size: int = 256,
        convs: int = 4,
    ):
        super().__init__(observation_shape, num_actions)
        in_channels = self.observation_shape[2]
        self.convs = int(convs)
        for i in range(1, self.convs + 1):
            setattr(self, f"conv{i}", nn.Conv2d(in_channels, int(channels), 3, stride=2, padding=1))
            setattr(self, f"elu{i}", nn.ELU())
            in_channels = int(channels)
        self.flatten = nn.Flatten()
        self.hidden_size = int(hidden_size)
        self.state_size = 2 * self.hidden_size
        self.cell_state = slice(self.hidden_size, self.state_size)  # what perturbation_memory shrinks
        self.state_parts = (("h", self.hidden_size), ("c", self.hidden_size))
        self.memory = nn.Identity()
        self.lstm = nn.LSTMCell(self._flat_size(), self.hidden_size)
        self._add_outputs(self.hidden_size)
        self._init_weights()
        init_lstm(self.lstm)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        for i in range(1, self.convs + 1):
            x = getattr(self, f"elu{i}")(getattr(self, f"conv{i}")(x))
        return x

    def forward(  # type: ignore[override]
        self, x: torch.Tensor, state: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.recur(self.encode(x), state)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """The part before the state is read: frames -> the LSTM's input (N, 800)."""
        return self.flatten(self.features(x))

    def recur(
        self, features: torch.Tensor, state: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return _lstm_step(self, features, state)


class ImpalaLSTM(ImpalaCNN):
    """The IMPALA CNN for Procgen (native input 64x64x3) with an ``LSTMCell`` after its dense layer:
    convolutional stacks -> fc 256 -> ReLU -> LSTMCell 256 -> 256 -> actor and critic heads, as the
    IMPALA paper's recurrent agent. The state is ``[h, c]``."""

    name = "impala-lstm"

    def __init__(
        self,
        observation_shape: Sequence[int],
        num_actions: int,
        channels: Sequence[int] = (16, 32, 32),
        hidden_size: int = 256,
    ):
        super().__init__(observation_shape, num_actions, channels, hidden_size)
        self.hidden_size = int(hidden_size)
        self.state_size = 2 * self.hidden_size
        self.cell_state = slice(self.hidden_size, self.state_size)
        self.state_parts = (("h", self.hidden_size), ("c", self.hidden_size))
        self.memory = nn.Identity()
        self.lstm = nn.LSTMCell(self.hidden_size, self.hidden_size)
        init_lstm(self.lstm)

    def forward(  # type: ignore[override]
        self, x: torch.Tensor, state: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.recur(self.encode(x), state)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """The part before the state is read: frames -> the dense layer's output (N, 256)."""
        return self.relu_fc(self.fc(self.flatten(self.features(x))))

    def recur(
        self, features: torch.Tensor, state: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return _lstm_step(self, features, state)


def _lstm_step(
    model: GreydanusLSTM | ImpalaLSTM, features: torch.Tensor, state: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One LSTMCell step from ``features`` and the incoming state ``[h, c]`` (None: zeros), then the heads."""
    if state is None:  # an episode's start
        state = features.new_zeros(features.shape[0], model.state_size)
    memory = match_rows(model.memory(state), features.shape[0])
    h, c = model.lstm(features, (memory[:, : model.hidden_size], memory[:, model.hidden_size :]))
    logits, value = model.heads(h)
    return logits, value, torch.cat([h, c], dim=1)


def init_lstm(lstm: nn.LSTMCell) -> None:
    """Orthogonal weights and zero biases, as CleanRL initialises its LSTM agents."""
    for name, parameter in lstm.named_parameters():
        if name.startswith("bias"):
            nn.init.zeros_(parameter)
        else:
            nn.init.orthogonal_(parameter, gain=1.0)


ARCHITECTURES[GreydanusLSTM.name] = GreydanusLSTM
ARCHITECTURES[ImpalaLSTM.name] = ImpalaLSTM
