"""JSON Schema and the page's JavaScript contract, generated from the dataclasses in :mod:`.schema`.

One source of truth: the page's ``contract.js`` (constants, key functions, JSDoc types) is this
module's output, so a field added in Python cannot be forgotten in the page (a test compares the
committed file with it). Both describe the *wire*
form: array fields are encoded arrays (see :mod:`.schema`), every payload has a ``kind``.
"""

from __future__ import annotations

import json
import re
import types
import typing
from collections.abc import Mapping
from dataclasses import fields, is_dataclass
from typing import Any, Literal

from .schema import (
    DATA_DIRNAME,
    DEFAULT_KEY_PREFIX,
    DEFAULT_METHOD,
    DTYPES,
    FORMAT_VERSION,
    INPUT_SITE,
    KEY_PATTERN,
    KEY_TEMPLATES,
    OBS_PER_SHEET,
    PAYLOAD_TYPES,
    RECEIVER,
    ArraySpec,
    array_spec,
    is_optional,
)

_SCHEMA_ID = "https://json-schema.org/draft/2020-12/schema"


def record_types() -> list[type]:
    """Every dataclass reachable from the payloads, dependencies first."""
    seen: list[type] = []

    def visit(hint: Any) -> None:
        if is_dataclass(hint):
            if hint in seen:
                return
            for f in fields(hint):
                visit(typing.get_type_hints(hint)[f.name])
            seen.append(typing.cast(type, hint))  # a field's hint: the class, never an instance
        for arg in typing.get_args(hint):
            visit(arg)

    for cls in PAYLOAD_TYPES:
        visit(cls)
    return seen


def _doc(cls: type) -> str:
    return " ".join((cls.__doc__ or "").split("\n\n")[0].split()).replace("``", "`")


def _array_note(spec: ArraySpec) -> str:
    how = "quantised: value = stored * scale" if spec.quantised else "scale is 1"
    kind = ", nonzero = true" if spec.logical == "bool" else ""
    return f"{spec.stored} ({', '.join(spec.dims)}), {how}{kind}"


# ---------------------------------------------------------------------------- JSON Schema


def _json_type(hint: Any) -> dict[str, Any]:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if isinstance(hint, typing.NewType):
        return {"$ref": f"#/$defs/{hint.__name__}"}
    if is_dataclass(hint):
        return {"$ref": f"#/$defs/{typing.cast(type, hint).__name__}"}
    if origin in (typing.Union, types.UnionType):
        return {"anyOf": [{"type": "null"} if a is type(None) else _json_type(a) for a in args]}
    if origin is Literal:
        return {"enum": list(args)}
    if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
        return {"type": "array", "items": _json_type(args[0])}
    if origin is tuple:
        items = [_json_type(a) for a in args]
        return {"type": "array", "prefixItems": items, "minItems": len(args), "maxItems": len(args)}
    if origin is Mapping:
        return {"type": "object", "additionalProperties": _json_type(args[1])}
    simple = {int: "integer", float: "number", str: "string", bool: "boolean"}
    return {"type": simple[hint]}


def json_schema() -> dict[str, Any]:
    """A JSON Schema (2020-12) that every payload object (the envelope's second argument) meets."""
    defs: dict[str, Any] = {
        "EncodedArray": {
            "type": "object",
            "description": "An array: little-endian, C order; value = stored * scale.",
            "properties": {
                "dtype": {"enum": list(DTYPES)},
                "shape": {"type": "array", "items": {"type": "integer", "minimum": 0}},
                "scale": {"type": "number", "minimum": 0},
                "compression": {"enum": ["none", "deflate"]},
                "data": {
                    "type": "string",
                    "contentEncoding": "base85",
                    "description": "RFC 1924 alphabet; a last group of n bytes in n + 1 characters",
                },
            },
            "required": ["dtype", "shape", "scale", "compression", "data"],
            "additionalProperties": False,
        },
        "ImageRef": {
            "type": "string",
            "description": f"A PNG file name in the {DATA_DIRNAME}/ folder, or a data: URL.",
            "pattern": rf"^(data:image/png;base64,.*|{KEY_PATTERN}\.png)$",
        },
    }
    for cls in record_types():
        props: dict[str, Any] = {}
        kind = getattr(cls, "KIND", None)
        if kind is not None:
            props["kind"] = {"const": kind}
        hints = typing.get_type_hints(cls)
        for f in fields(cls):
            spec = array_spec(f)
            if spec is None:
                prop = _json_type(hints[f.name])
            else:
                n = len(spec.dims)
                prop = {
                    "$ref": "#/$defs/EncodedArray",
                    "properties": {"dtype": {"const": spec.stored}, "shape": {"minItems": n, "maxItems": n}},
                }
            doc = f.metadata.get("doc", "") + (f" [{_array_note(spec)}]" if spec else "")
            props[f.name] = {**prop, "description": doc}
        optional = {f.name for f in fields(cls) if is_optional(f)}
        defs[cls.__name__] = {
            "type": "object",
            "description": _doc(cls),
            "properties": props,
            "required": [name for name in props if name not in optional],
            "additionalProperties": False,
        }
    return {
        "$schema": _SCHEMA_ID,
        "title": f"understanding_rl_vision interface data, format {FORMAT_VERSION}",
        "oneOf": [{"$ref": f"#/$defs/{cls.__name__}"} for cls in PAYLOAD_TYPES],
        "$defs": defs,
    }


# ---------------------------------------------------------------------------- JavaScript


def _js_type(hint: Any) -> str:
    """A JSDoc type expression for a field's Python type hint."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if isinstance(hint, typing.NewType) or is_dataclass(hint):
        return typing.cast(type, hint).__name__
    if origin in (typing.Union, types.UnionType):
        return "(" + "|".join("null" if a is type(None) else _js_type(a) for a in args) + ")"
    if origin is Literal:
        return "(" + "|".join(f'"{a}"' for a in args) + ")"
    if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
        return f"{_js_type(args[0])}[]"
    if origin is tuple:
        return "[" + ", ".join(_js_type(a) for a in args) + "]"
    if origin is Mapping:
        return f"Object<string, {_js_type(args[1])}>"
    return {int: "number", float: "number", str: "string", bool: "boolean"}[hint]


def _js_key_function(template: str) -> str:
    params = re.findall(r"{(\w+)}", template)
    body = re.sub(r"{(\w+)}", r"${\1}", template)
    return f"({', '.join(params)}) => `{body}`"


def javascript_contract() -> str:
    """The text of ``svelte/src/lib/contract.js``: the constants and key functions the page runs
    with, and a JSDoc typedef per record. Regenerate with
    ``python -m understanding_rl_vision.contract``; a test fails when it is stale."""
    quoted = ", ".join(f'"{d}"' for d in DTYPES)
    out = [
        "// GENERATED by `python -m understanding_rl_vision.contract`; do not edit.",
        "// The wire format is defined once, by the dataclasses in",
        "// understanding_rl_vision/contract/schema.py; tests/export/test_schema.py fails when this",
        "// file no longer matches them.",
        "",
        f"export const FORMAT_VERSION = {FORMAT_VERSION};",
        f'export const RECEIVER = "{RECEIVER}";',
        f'export const DATA_DIRNAME = "{DATA_DIRNAME}";',
        f"export const OBS_PER_SHEET = {OBS_PER_SHEET};",
        f"export const KEY_PATTERN = /^{KEY_PATTERN}$/;",
        f"export const DTYPES = Object.freeze([{quoted}]);",
        f'export const INPUT_SITE = "{INPUT_SITE}";',
        f'export const DEFAULT_KEY_PREFIX = "{DEFAULT_KEY_PREFIX}";',
        "/** The method of a manifest without `methods`: integrated gradients of every output at every layer. */",
        f"export const DEFAULT_METHOD = Object.freeze({json.dumps(DEFAULT_METHOD, ensure_ascii=False)});",
        "",
        "/** The payload key of each kind, from the Python key templates. */",
        "export const keys = Object.freeze({",
        *(f"  {kind}: {_js_key_function(t)}," for kind, t in KEY_TEMPLATES.items()),
        "});",
        "",
        f"/** @typedef {{{'|'.join(repr(d).replace(chr(39), chr(34)) for d in DTYPES)}}} DType */",
        "",
        "/**",
        ' * An array: base85 `data` (RFC 1924 alphabet), zlib-deflated if `compression` is "deflate",',
        " * little-endian,",
        " * C order; value = stored * scale (1 for unquantised arrays).",
        " * @typedef {object} EncodedArray",
        " * @property {DType} dtype",
        " * @property {number[]} shape",
        " * @property {number} scale",
        ' * @property {("none"|"deflate")} compression',
        " * @property {string} data",
        " */",
        "",
        f"/** @typedef {{string}} ImageRef  a PNG file name in the {DATA_DIRNAME}/ folder, or a data: URL */",
        "",
    ]
    for cls in record_types():
        out.append("/**")
        out.append(f" * {_doc(cls)}")
        out.append(f" * @typedef {{object}} {cls.__name__}")
        kind = getattr(cls, "KIND", None)
        if kind is not None:
            out.append(f' * @property {{"{kind}"}} kind')
        hints = typing.get_type_hints(cls)
        for f in fields(cls):
            spec = array_spec(f)
            js = "EncodedArray" if spec else _js_type(hints[f.name])
            doc = f.metadata.get("doc", "") + (f" [{_array_note(spec)}]" if spec else "")
            name = f"[{f.name}]" if is_optional(f) else f.name
            out.append(f" * @property {{{js}}} {name}  {doc.replace('``', '`')}")
        out.append(" */")
        out.append("")
    names = "|".join(cls.__name__ for cls in PAYLOAD_TYPES)
    out.append(f"/** @typedef {{({names})}} Payload */")
    return "\n".join(out) + "\n"
