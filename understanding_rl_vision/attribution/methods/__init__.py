"""Explanation methods, one class each, found by name in :data:`REGISTRY`.

A new method is one new module here (a frozen dataclass subclass of :class:`Method` with a
``MethodInfo``, decorated with :func:`register`) plus its tests, and one import line below.
"""

from . import cam as cam  # each import registers its methods
from . import gradient as gradient
from . import noise_tunnel as noise_tunnel
from .base import REGISTRY, Attaches, Method, MethodInfo, Produces, method_class, register

__all__ = ["REGISTRY", "Attaches", "Method", "MethodInfo", "Produces", "method_class", "register"]
