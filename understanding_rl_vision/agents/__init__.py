"""Agents: the adapter the pipeline sees, built-in architectures and native checkpoints."""

from .architectures import ARCHITECTURES, build_model, make_agent
from .base import Agent, AgentOutput, ArchitectureSpec, Preprocessing
from .checkpoint import load_checkpoint, read_checkpoint_metadata, save_checkpoint

__all__ = [
    "ARCHITECTURES",
    "Agent",
    "AgentOutput",
    "ArchitectureSpec",
    "Preprocessing",
    "build_model",
    "load_checkpoint",
    "make_agent",
    "read_checkpoint_metadata",
    "save_checkpoint",
]
