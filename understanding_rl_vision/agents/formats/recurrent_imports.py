"""The recurrent network of imported LSTM agents: sb3-contrib's ``RecurrentPPO`` (``CnnLstmPolicy``)
and CleanRL's ``ppo_atari_lstm``, rebuilt as one module that follows our state protocol.

Both libraries put an LSTM between the Nature CNN and the heads:

* the Nature CNN (``conv1``..``conv3``, each with its own ReLU), ``fc`` and ``relu_fc`` (SB3's
  ``features_extractor.linear``, CleanRL's ``network.7``);
* ``lstm``, the actor's LSTM (SB3's ``lstm_actor``, CleanRL's ``lstm``), one layer, as an
  ``nn.LSTMCell`` since each call is one step;
* the critic, in one of three ways (``critic``): ``"lstm"``, a separate critic LSTM ``lstm_critic``
  (SB3's default, ``enable_critic_lstm=True``: the actor and the critic then carry separate
  states); ``"shared"``, the value reads the actor's LSTM output (SB3's ``shared_lstm=True``, and
  CleanRL); ``"linear"``, no recurrence for the critic, a linear layer ``critic_fc`` on the features
  (SB3 with neither);
* SB3's ``mlp_extractor`` hidden layers, ``policy_net`` and ``value_net`` (each a Linear then its
  own activation; none by default), then the heads ``policy`` (SB3's ``action_net``, CleanRL's
  ``actor``) and ``value`` (``value_net``, ``critic``).

The state (see :mod:`..recurrent`) is one flat row of ``[h_actor, c_actor, h_critic, c_critic]``
with a separate critic LSTM, ``[h, c]`` otherwise (``cell_state`` lists the ``c`` entries, which
perturbation's ``perturbation_memory`` shrinks); it enters through ``memory`` and
:func:`~..recurrent.match_rows`. An episode's start is a zero state, as both libraries reset it
(``(1 - episode_start) * state``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.fx
from torch import nn

from ...errors import UserError
from ..architectures import ARCHITECTURES, _ActorCritic
from ..recurrent import init_lstm, match_rows

CRITICS = ("lstm", "shared", "linear")
"""How the value is computed: a separate critic LSTM, the actor's LSTM, or a linear layer on the features."""
ACTIVATIONS: dict[str, type[nn.Module]] = {
    "Tanh": nn.Tanh,
    "ReLU": nn.ReLU,
    "ELU": nn.ELU,
    "LeakyReLU": nn.LeakyReLU,
    "GELU": nn.GELU,
    "SiLU": nn.SiLU,
    "Sigmoid": nn.Sigmoid,
}
"""Activations of SB3's ``mlp_extractor`` (``activation_fn``, a torch class built without arguments)."""

torch.fx.wrap("match_rows")  # a leaf when layers are found by tracing (wrap patches this module's name)


class NatureLSTM(_ActorCritic):
    """Nature CNN, a dense layer, a one-layer LSTM (and, when ``critic`` is ``"lstm"``, a separate
    critic LSTM), optional hidden layers, then the policy and value heads; see the module docstring."""

    name = "nature-lstm"
    min_input_size = 36  # as the Nature CNN

    def __init__(
        self,
        observation_shape: Sequence[int],
        num_actions: int,
        hidden_size: int = 512,
        lstm_size: int = 128,
        critic: str = "shared",
        policy_layers: Sequence[int] = (),
        value_layers: Sequence[int] = (),
        activation: str = "Tanh",
        lstm_bias: bool = True,
    ):
        super().__init__(observation_shape, num_actions)
        if critic not in CRITICS:
            raise UserError(f"unknown critic {critic!r} for {self.name!r}; known: {', '.join(CRITICS)}")
        if activation not in ACTIVATIONS:
            raise UserError(f"unknown activation {activation!r}; known: {', '.join(ACTIVATIONS)}")
        self.conv1 = nn.Conv2d(self.observation_shape[2], 32, 8, stride=4)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(32, 64, 4, stride=2)
        self.relu2 = nn.ReLU()
        self.conv3 = nn.Conv2d(64, 64, 3, stride=1)
        self.relu3 = nn.ReLU()
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(self._flat_size(), int(hidden_size))
        self.relu_fc = nn.ReLU()
        self.critic_kind = critic
        self.lstm_size = int(lstm_size)
        self.memory = nn.Identity()
        self.lstm = nn.LSTMCell(int(hidden_size), self.lstm_size, bias=bool(lstm_bias))
        if critic == "lstm":
            self.lstm_critic = nn.LSTMCell(int(hidden_size), self.lstm_size, bias=bool(lstm_bias))
        elif critic == "linear":
            self.critic_fc = nn.Linear(int(hidden_size), self.lstm_size)
        self.state_size = (4 if critic == "lstm" else 2) * self.lstm_size
        size = self.lstm_size  # what perturbation_memory shrinks: the cell states, c_actor (and c_critic)
        self.cell_state: slice | list[int] = (
            [*range(size, 2 * size), *range(3 * size, 4 * size)] if critic == "lstm" else slice(size, 2 * size)
        )
        self.policy_net = self._hidden_layers(policy_layers, activation)
        self.value_net = self._hidden_layers(value_layers, activation)
        self.policy = nn.Linear(int(policy_layers[-1]) if policy_layers else self.lstm_size, self.num_actions)
        self.value = nn.Linear(int(value_layers[-1]) if value_layers else self.lstm_size, 1)
        self._init_weights()
        init_lstm(self.lstm)
        if critic == "lstm":
            init_lstm(self.lstm_critic)

    def _hidden_layers(self, sizes: Sequence[int], activation: str) -> nn.Sequential | None:
        """SB3's ``mlp_extractor`` net: Linear, activation, Linear, activation...; None for none."""
        if not sizes:
            return None
        layers: list[nn.Module] = []
        width = self.lstm_size
        for size in sizes:
            layers += [nn.Linear(width, int(size)), ACTIVATIONS[activation]()]
            width = int(size)
        return nn.Sequential(*layers)

    @property
    def state_parts(self) -> tuple[tuple[str, int], ...]:
        """The state's parts in order, with their sizes."""
        names = ("h_actor", "c_actor", "h_critic", "c_critic") if self.critic_kind == "lstm" else ("h", "c")
        return tuple((name, self.lstm_size) for name in names)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu1(self.conv1(x))
        x = self.relu2(self.conv2(x))
        return self.relu3(self.conv3(x))

    def forward(  # type: ignore[override]
        self, x: torch.Tensor, state: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        features = self.relu_fc(self.fc(self.flatten(self.features(x))))
        if state is None:  # an episode's start
            state = features.new_zeros(features.shape[0], self.state_size)
        memory = match_rows(self.memory(state), features.shape[0])
        size = self.lstm_size
        h, c = self.lstm(features, (memory[:, :size], memory[:, size : 2 * size]))
        if self.critic_kind == "lstm":
            h_critic, c_critic = self.lstm_critic(features, (memory[:, 2 * size : 3 * size], memory[:, 3 * size :]))
            latent_value, following = h_critic, torch.cat([h, c, h_critic, c_critic], dim=1)
        elif self.critic_kind == "linear":
            latent_value, following = self.critic_fc(features), torch.cat([h, c], dim=1)
        else:
            latent_value, following = h, torch.cat([h, c], dim=1)
        latent_policy = h
        if self.policy_net is not None:
            latent_policy = self.policy_net(latent_policy)
        if self.value_net is not None:
            latent_value = self.value_net(latent_value)
        return self.policy(latent_policy), self.value(latent_value).squeeze(-1), following


ARCHITECTURES[NatureLSTM.name] = NatureLSTM
