"""JSON Schema and TypeScript declarations generated from the dataclasses in :mod:`.schema`.

One source of truth: the page's ``contract.ts`` is this module's output, so a field added in
Python cannot be forgotten in TypeScript (a test compares them). Both describe the *wire*
form: array fields are encoded arrays (see :mod:`.schema`), every payload has a ``kind``.
"""

from __future__ import annotations

import re
import types
import typing
from collections.abc import Mapping
from dataclasses import fields, is_dataclass
from typing import Any, Literal

from .schema import (
    DATA_DIRNAME,
    DTYPES,
    FORMAT_VERSION,
    KEY_PATTERN,
    KEY_TEMPLATES,
    OBS_PER_SHEET,
    PAYLOAD_TYPES,
    RECEIVER,
    ArraySpec,
    array_spec,
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
            seen.append(hint)
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
        return {"$ref": f"#/$defs/{hint.__name__}"}
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
                "data": {"type": "string", "contentEncoding": "base64"},
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
                prop = {"$ref": "#/$defs/EncodedArray", "properties": {
                    "dtype": {"const": spec.stored},
                    "shape": {"minItems": n, "maxItems": n}}}  # fmt: skip
            doc = f.metadata.get("doc", "") + (f" [{_array_note(spec)}]" if spec else "")
            props[f.name] = {**prop, "description": doc}
        defs[cls.__name__] = {
            "type": "object",
            "description": _doc(cls),
            "properties": props,
            "required": list(props),
            "additionalProperties": False,
        }
    return {
        "$schema": _SCHEMA_ID,
        "title": f"understanding_rl_vision interface data, format {FORMAT_VERSION}",
        "oneOf": [{"$ref": f"#/$defs/{cls.__name__}"} for cls in PAYLOAD_TYPES],
        "$defs": defs,
    }


# ---------------------------------------------------------------------------- TypeScript


def _ts_type(hint: Any) -> str:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if isinstance(hint, typing.NewType) or is_dataclass(hint):
        return hint.__name__
    if origin in (typing.Union, types.UnionType):
        return " | ".join("null" if a is type(None) else _ts_type(a) for a in args)
    if origin is Literal:
        return " | ".join(f'"{a}"' for a in args)
    if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
        return f"{_ts_type(args[0])}[]"
    if origin is tuple:
        return "[" + ", ".join(_ts_type(a) for a in args) + "]"
    if origin is Mapping:
        return f"Record<string, {_ts_type(args[1])}>"
    return {int: "number", float: "number", str: "string", bool: "boolean"}[hint]


def typescript_declarations() -> str:
    """The text of ``contract.ts``: constants, key functions and one interface per record."""
    dtypes = " | ".join(f'"{d}"' for d in DTYPES)
    out = [
        "// Generated by understanding_rl_vision.export.contract.typescript_declarations().",
        "// Do not edit: change the dataclasses in understanding_rl_vision/export/schema.py.",
        "",
        f"export const FORMAT_VERSION = {FORMAT_VERSION};",
        f'export const RECEIVER = "{RECEIVER}";',
        f'export const DATA_DIRNAME = "{DATA_DIRNAME}";',
        f"export const OBS_PER_SHEET = {OBS_PER_SHEET};",
        f"export const KEY_PATTERN = /^{KEY_PATTERN}$/;",
        "",
        f"export type DType = {dtypes};",
        "",
        "/** An array: base64 `data`, zlib-deflated if `compression` is \"deflate\",",
        " * little-endian, C order; value = stored * scale (1 for unquantised arrays). */",
        "export interface EncodedArray<D extends DType = DType> {",
        "  dtype: D;",
        "  shape: number[];",
        "  scale: number;",
        '  compression: "none" | "deflate";',
        "  data: string;",
        "}",
        "",
        f"/** A PNG file name in the {DATA_DIRNAME}/ folder, or a data: URL. */",
        "export type ImageRef = string;",
        "",
    ]
    for kind, template in KEY_TEMPLATES.items():
        params = re.findall(r"{(\w+)}", template)
        body = re.sub(r"{(\w+)}", r"${\1}", template)
        signature = ", ".join(f"{p}: number" for p in params)
        out.append(f"export function {kind}Key({signature}): string {{")
        out.append(f"  return `{body}`;")
        out.append("}")
    out.append("")
    for cls in record_types():
        out.append(f"/** {_doc(cls)} */")
        out.append(f"export interface {cls.__name__} {{")
        if getattr(cls, "KIND", None) is not None:
            out.append(f'  kind: "{cls.KIND}";')
        hints = typing.get_type_hints(cls)
        for f in fields(cls):
            spec = array_spec(f)
            ts = f'EncodedArray<"{spec.stored}">' if spec else _ts_type(hints[f.name])
            doc = f.metadata.get("doc", "") + (f" [{_array_note(spec)}]" if spec else "")
            doc = doc.replace("``", "`")
            out.append(f"  /** {doc} */")
            out.append(f"  {f.name}: {ts};")
        out.append("}")
        out.append("")
    names = [cls.__name__ for cls in PAYLOAD_TYPES]
    out.append(f"export type Payload = {' | '.join(names)};")
    kinds = "; ".join(f"{cls.KIND}: {cls.__name__}" for cls in PAYLOAD_TYPES)
    out.append(f"export type PayloadByKind = {{ {kinds} }};")
    out.append("export type Receiver = (key: string, payload: Payload) => void;")
    return "\n".join(out) + "\n"
