"""Agents: the adapter the pipeline sees, built-in architectures, and loaders for our own
checkpoints and for files from Stable-Baselines3, CleanRL and TorchScript."""

from .architectures import ARCHITECTURES, build_model, make_agent
from .attention import AttentionCNN, FreeLunchSaliency
from .base import Agent, AgentOutput, ArchitectureSpec, Preprocessing, agent_digest
from .checkpoint import load_checkpoint, read_checkpoint_metadata, save_checkpoint
from .custom import custom_agent
from .formats import load_agent
from .formats.describe import describe_file
from .recurrent import GreydanusLSTM

__all__ = [
    "ARCHITECTURES",
    "Agent",
    "AgentOutput",
    "ArchitectureSpec",
    "AttentionCNN",
    "FreeLunchSaliency",
    "GreydanusLSTM",
    "Preprocessing",
    "agent_digest",
    "build_model",
    "custom_agent",
    "describe_file",
    "load_agent",
    "load_checkpoint",
    "make_agent",
    "read_checkpoint_metadata",
    "save_checkpoint",
]
