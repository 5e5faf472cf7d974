"""Explanation methods, one class each, found by name in :data:`REGISTRY`.

A new method is one new module in this package (a frozen dataclass subclass of :class:`Method`
with a ``MethodInfo``, decorated with :func:`register`) plus its tests: every module here is
imported below, which registers its methods, and :mod:`.settings` turns their fields into settings
and CLI flags. Nothing else changes.
"""

import importlib
import pkgutil

from .base import (
    BASIS_METHOD,
    REGISTRY,
    TREE_FIELDS,
    Attaches,
    Method,
    MethodInfo,
    Produces,
    TreeMethod,
    method_class,
    register,
)

for _module in pkgutil.iter_modules(__path__):
    if _module.name not in ("base", "settings"):
        importlib.import_module(f"{__name__}.{_module.name}")

from .integrated_gradients import IntegratedGradients  # noqa: E402
from .settings import MethodSettings, MethodSettingsBase  # noqa: E402  (after every method is registered)

__all__ = [
    "BASIS_METHOD",
    "REGISTRY",
    "TREE_FIELDS",
    "Attaches",
    "IntegratedGradients",
    "Method",
    "MethodInfo",
    "MethodSettings",
    "MethodSettingsBase",
    "Produces",
    "TreeMethod",
    "method_class",
    "register",
]
