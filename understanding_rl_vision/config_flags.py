"""CLI flags generated from :class:`~understanding_rl_vision.config.RunConfig`: one flag per
field, named after it (``nmf_features`` -> ``--nmf-features``), its help the field's docstring.
A new config field is a new flag without touching the CLI."""

from __future__ import annotations

import argparse
import ast
import inspect
import types
import typing

from functools import cache
from typing import Any, Literal

from . import config as config_module
from .config import RunConfig, flat_field_owners


@cache
def field_docs() -> dict[str, str]:
    """Each config field's docstring (the string literal under it in config.py)."""
    tree = ast.parse(inspect.getsource(config_module))
    docs: dict[str, str] = {}
    for node in ast.walk(tree):
        if not isinstance(node, ast.ClassDef):
            continue
        body = node.body
        for first, second in zip(body, body[1:]):
            if (isinstance(first, ast.AnnAssign) and isinstance(first.target, ast.Name)
                    and isinstance(second, ast.Expr) and isinstance(second.value, ast.Constant)
                    and isinstance(second.value.value, str)):  # fmt: skip
                docs[first.target.id] = " ".join(second.value.value.split())
    return docs


def _field_types() -> dict[str, tuple[Any, Any]]:
    """Flat name -> (type hint, default)."""
    defaults, out = RunConfig(), {}
    for name, group in flat_field_owners().items():
        owner = getattr(defaults, group) if group else defaults
        out[name] = (typing.get_type_hints(type(owner))[name], getattr(owner, name))
    return out


def _parser_for(hint: Any) -> tuple[Any, dict[str, Any]]:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is bool:
        return None, {"action": argparse.BooleanOptionalAction}
    if origin is Literal:
        return str, {"choices": list(args)}
    if origin is tuple:
        item = args[0]
        return (lambda text: tuple(item(part) for part in text.split(",") if part.strip())), {"metavar": "A,B,..."}
    if origin in (typing.Union, types.UnionType):
        inner = next(a for a in args if a is not type(None))
        return inner, {}
    return hint, {}


def add_run_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per RunConfig field, grouped as the config is; defaults stay in the config."""
    docs, types = field_docs(), _field_types()
    groups: dict[str | None, argparse._ArgumentGroup] = {}
    for name, group in flat_field_owners().items():
        if group not in groups:
            title = group.replace("_", " ") if group else "run"
            groups[group] = parser.add_argument_group(f"{title} settings")
        hint, default = types[name]
        convert, extra = _parser_for(hint)
        shown = ",".join(map(str, default)) if isinstance(default, tuple) else default
        help_text = f"{docs.get(name, '')} (default: {shown!s})".replace("%", "%%")
        kwargs: dict[str, Any] = {"default": None, "help": help_text, "dest": f"setting_{name}", **extra}
        if convert is not None:
            kwargs["type"] = convert
        groups[group].add_argument(f"--{name.replace('_', '-')}", **kwargs)


def settings_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """The settings the user gave on the command line (the rest keep the config's defaults)."""
    return {key[len("setting_"):]: value for key, value in vars(args).items()
            if key.startswith("setting_") and value is not None}  # fmt: skip


__all__ = ["add_run_flags", "field_docs", "settings_from_args"]
