"""Every registered method's settings as one frozen dataclass, so the run's configuration (and
its CLI flags, generated from it) gains a setting whenever a method file declares a field.

A setting belongs to the methods that declare a field of its name; two methods may share one
(SmoothGrad and VarGrad share ``noise_samples``) only with the same type and default.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import MISSING, dataclass, field, make_dataclass
from typing import Any

from .base import REGISTRY, Method, method_class


@dataclass(frozen=True)
class MethodSettingsBase:
    """What :data:`MethodSettings` adds to its generated fields."""

    def method(self, name: str) -> Method:
        """The method called ``name``, built with these settings."""
        cls = method_class(name)
        return cls(**{f.name: getattr(self, f.name) for f in cls.flag_fields()})

    def owners(self, name: str) -> tuple[str, ...]:
        """The methods that read setting ``name``."""
        return tuple(m for m, cls in REGISTRY.items() if name in {f.name for f in cls.flag_fields()})

    def __post_init__(self) -> None:
        for name in REGISTRY:  # each method checks its own values, so a bad one fails here, at once
            self.method(name)


def _default(f: dataclasses.Field) -> Any:
    if f.default is not MISSING:
        return f.default
    if f.default_factory is not MISSING:
        return f.default_factory()
    raise AssertionError(f"method setting {f.name} needs a default")  # a bug, caught by the tests


def _build() -> type[MethodSettingsBase]:
    specs: dict[str, tuple[Any, Any, type]] = {}
    readers: dict[str, list[str]] = {}
    for name, cls in REGISTRY.items():
        hints = typing.get_type_hints(cls)
        for f in cls.flag_fields():
            declaring = next(c for c in cls.__mro__ if f.name in vars(c).get("__annotations__", {}))
            spec = (hints[f.name], _default(f), declaring)
            if f.name in specs and specs[f.name][:2] != spec[:2]:
                raise AssertionError(f"methods declare setting {f.name} differently")  # a bug, caught by tests
            specs.setdefault(f.name, spec)
            readers.setdefault(f.name, []).append(name)
    fields = [
        (name, hint, field(default=default, metadata={"owner": owner, "methods": tuple(readers[name])}))
        for name, (hint, default, owner) in specs.items()
    ]
    generated = make_dataclass("MethodSettings", fields, bases=(MethodSettingsBase,), frozen=True)
    generated.__module__ = __name__
    return generated


MethodSettings = _build()
"""Generated: one field per method setting (``ig_steps``, ``cam_relu``, ``noise_samples``, ...), its
default the declaring method's, its ``metadata["owner"]`` the class declaring it (whose source holds
the field's docstring) and ``metadata["methods"]`` the names of the methods that read it."""
