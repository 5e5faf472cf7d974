"""Training (PPO) and evaluation of the agents the interface explains."""

from .config import PPOConfig, make_config
from .evaluate import EvaluationResult, evaluate
from .ppo import train

__all__ = ["EvaluationResult", "PPOConfig", "evaluate", "make_config", "train"]
