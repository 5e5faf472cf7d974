"""CLI flags generated from a frozen config dataclass (``RunConfig`` for run/demo, ``PPOConfig``
for train): one flag per field, named after it (``nmf_features`` -> ``--nmf-features``), its help
the field's docstring and default. A new field is a new flag without touching the CLI, and the
defaults live only in the dataclass: only the flags given become settings."""

from __future__ import annotations

import argparse
import ast
import dataclasses
import inspect
import itertools
import textwrap
import types
import typing
from functools import cache
from typing import Any, Literal

PREFIX = "setting_"  # namespace dests, so settings never collide with the command's own flags


@cache
def flat_fields(cls: type) -> dict[str, tuple[str | None, type]]:
    """Flat field name -> (the group field holding it, None at top level; the class declaring
    it). A field whose default is a dataclass is a group: its fields are flattened into this one.
    A group field may name another declaring class in ``metadata["owner"]`` (the generated method
    settings point at each method's class, where the field's type and docstring are written)."""
    out: dict[str, tuple[str | None, type]] = {}
    defaults = cls()
    for f in dataclasses.fields(cls):
        value = getattr(defaults, f.name)
        members: list[tuple[str, str | None, type]]
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            members = [(g.name, f.name, g.metadata.get("owner", type(value))) for g in dataclasses.fields(value)]
        else:
            members = [(f.name, None, cls)]
        for name, group, owner in members:
            if name in out:
                raise AssertionError(f"setting {name} is declared twice")  # a bug, caught by tests
            out[name] = (group, owner)
    return out


@cache
def field_docs(cls: type) -> dict[str, str]:
    """Each field's docstring (the string literal under it), nested groups included."""
    docs: dict[str, str] = {}
    for owner in dict.fromkeys(owner for _, owner in flat_fields(cls).values()):
        try:
            body = ast.parse(textwrap.dedent(inspect.getsource(owner))).body[0].body  # type: ignore[attr-defined]
        except (OSError, TypeError):  # no source shipped: flags without help text
            continue
        for node, following in itertools.pairwise(body):
            if (
                isinstance(node, ast.AnnAssign)
                and isinstance(node.target, ast.Name)
                and isinstance(following, ast.Expr)
                and isinstance(following.value, ast.Constant)
                and isinstance(following.value.value, str)
            ):
                docs[node.target.id] = " ".join(following.value.value.split())
    return docs


def _parser_for(hint: Any) -> dict[str, Any]:
    """argparse keywords for a type hint: bools as --x/--no-x, tuples as comma lists, Literals
    as choices, Optionals as their inner type."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is bool:
        return {"action": argparse.BooleanOptionalAction}
    if origin is Literal:
        return {"type": type(args[0]), "choices": list(args)}
    if origin is tuple:
        item = args[0]
        return {
            "type": lambda text: tuple(item(part) for part in text.split(",") if part.strip()),
            "metavar": "A,B,...",
        }
    if origin in (typing.Union, types.UnionType):
        return _parser_for(next(a for a in args if a is not type(None)))
    return {"type": hint, "metavar": hint.__name__.upper()}


def add_config_flags(parser: argparse.ArgumentParser, cls: type, title: str) -> None:
    """One flag per field of ``cls``, in argument groups as the config nests them."""
    defaults, docs = cls(), field_docs(cls)
    groups: dict[str | None, Any] = {}
    for name, (group, owner) in flat_fields(cls).items():
        if group not in groups:
            heading = group.replace("_", " ") if group else title
            groups[group] = parser.add_argument_group(
                heading if heading.endswith("settings") else f"{heading} settings"
            )
        holder = getattr(defaults, group) if group else defaults
        default = getattr(holder, name)
        shown = ",".join(map(str, default)) if isinstance(default, tuple) else default
        readers = next(f for f in dataclasses.fields(holder) if f.name == name).metadata.get("methods")
        used_by = f" Read by {', '.join(readers)}." if readers else ""
        help_text = f"{docs.get(name, '')}{used_by} (default: {shown!s})".replace("%", "%%")
        kind = _parser_for(typing.get_type_hints(owner)[name])
        groups[group].add_argument(
            f"--{name.replace('_', '-')}", dest=PREFIX + name, default=argparse.SUPPRESS, help=help_text, **kind
        )


def settings_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """The settings given on the command line, by field name; the rest keep the config's defaults."""
    given = vars(args).items()
    return {key.removeprefix(PREFIX): value for key, value in given if key.startswith(PREFIX)}


__all__ = ["add_config_flags", "field_docs", "flat_fields", "settings_from_args"]
