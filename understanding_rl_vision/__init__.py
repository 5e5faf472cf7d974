"""understanding-rl-vision: interactive attribution interfaces for pixel-based RL agents."""

__version__ = "0.1.0"
