"""States of interest (seed 003): a generator of the agent's states, trained with the agent's own
saliency and perception in its loss, and optimised in its latent space toward what a target asks for
(high value, low value, a decisive choice, one action)."""

from .config import GeneratorConfig, make_generator_config
from .model import StateVAE
from .sample import Sampled, sample_states
from .store import load_generator, read_header
from .targets import Target, parse_targets
from .train import train_generator

__all__ = [
    "GeneratorConfig",
    "Sampled",
    "StateVAE",
    "Target",
    "load_generator",
    "make_generator_config",
    "parse_targets",
    "read_header",
    "sample_states",
    "train_generator",
]
