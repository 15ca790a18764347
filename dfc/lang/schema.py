"""JSON Schema validation of a loaded spec, with messages written for people.

The schema (``schemas/dfc.schema.json``) is the single description of the spec's
structure: editors use it for completion, ``dfc schema`` prints it, and this module
checks documents against it. Raw jsonschema messages are never shown: each kind of
failure is translated into a message that names the place and says what to write.
"""

from __future__ import annotations

import functools
import json
from importlib import resources
from typing import Any, Iterable

from ..diagnostics import Diagnostic, did_you_mean
from .expr import type_name
from .yamlsrc import SourceMap


@functools.cache
def schema(name: str = "dfc") -> dict:
    """A schema shipped with the package: ``dfc`` (a spec) or ``cluster`` (a cluster file)."""
    return json.loads(schema_text(name))


def schema_text(name: str = "dfc") -> str:
    return resources.files("dfc.lang").joinpath(f"{name}.schema.json").read_text("utf-8")


@functools.cache
def _validator(name: str):
    import jsonschema

    return jsonschema.Draft202012Validator(schema(name))


def where(path: Iterable) -> str:
    """A readable path: ('arrays', 'A', 'shape', 0) -> 'arrays.A.shape[0]'."""
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "the spec"


def check_schema(data: Any, smap: SourceMap, name: str = "dfc") -> list[Diagnostic]:
    """Every place where ``data`` breaks the schema ``name``, as a message for people."""
    diags: list[Diagnostic] = []
    for error in _validator(name).iter_errors(data):
        diags.extend(_translate(error, smap, schema(name)))
    return diags


def _resolve(sub: dict, root: dict) -> dict:
    ref = sub.get("$ref", "")
    return root["$defs"][ref.rsplit("/", 1)[1]] if ref.startswith("#/$defs/") else sub


def _expected(sub: dict, root: dict) -> str:
    """A short description of what a (sub)schema accepts."""
    sub = _resolve(sub, root)
    if "anyOf" in sub or "oneOf" in sub:
        parts = [_expected(s, root) for s in sub.get("anyOf", sub.get("oneOf", []))]
        return " or ".join(dict.fromkeys(parts))
    if "required" in sub and sub.get("type") == "object":
        return "{" + ", ".join(f"{k}: ..." for k in sub["required"]) + "}"
    return {
        "integer": "a whole number",
        "number": "a number",
        "string": "a string",
        "boolean": "true or false",
        "array": "a list",
        "object": "a mapping",
    }.get(sub.get("type", ""), "a value")


def _translate(error, smap: SourceMap, root: dict) -> list[Diagnostic]:
    path = tuple(error.absolute_path)
    v, inst, sch = error.validator, error.instance, error.schema
    at = smap.value(path)
    here = where(path)

    if v == "additionalProperties":
        allowed = list(sch.get("properties", {}))
        out = []
        for key in sorted(k for k in inst if k not in allowed):
            hint = did_you_mean(key, allowed)
            if any(c in key for c in "()[]") or " " in key:
                hint = (
                    "inside {...} a ',' ends the value: quote expressions that contain commas, "
                    'e.g. compute: "dot(a, b)"'
                )
            out.append(Diagnostic(smap.key(path + (key,)), "unknown-key", f"unknown key '{key}' in {here}", hint))
        return out
    if v == "required":
        missing = [k for k in error.validator_value if k not in inst]
        return [
            Diagnostic(
                smap.key(path),
                "missing-key",
                f"{here} needs '{k}'",
                sch.get("properties", {}).get(k, {}).get("description", ""),
            )
            for k in missing
        ]
    if v in ("oneOf", "anyOf"):
        branch = _pick_branch(error, inst, root)
        if branch is not None:
            return [d for e in branch for d in _translate(e, smap, root)]
        return [
            Diagnostic(
                at,
                "bad-type",
                f"{here} must be {_expected(sch, root)}, not {type_name(inst)}",
                sch.get("description", ""),
            )
        ]
    if v == "type":
        return [
            Diagnostic(
                at,
                "bad-type",
                f"{here} must be {_expected(sch, root)}, not {type_name(inst)}",
                sch.get("description", ""),
            )
        ]
    if v == "enum":
        choices = [str(c) for c in error.validator_value]
        hint = did_you_mean(str(inst), choices) if isinstance(inst, str) else ""
        if not hint or not hint.startswith("did you"):
            hint = "expected one of: " + ", ".join(choices)
        return [Diagnostic(at, "bad-value", f"{here} cannot be {inst!r}", hint)]
    if v == "const":
        return [
            Diagnostic(
                at,
                "bad-value",
                f"{here} must be {error.validator_value!r}, not {inst!r}",
                f"this version of dfc reads {root.get('title', 'files').removeprefix('dfc ')}s of "
                f"version {error.validator_value!r}",
            )
        ]
    if v == "propertyNames":
        return []  # reported through its sub-error (pattern) below
    if v == "pattern":
        if error.relative_schema_path and "propertyNames" in error.relative_schema_path:
            key_pos = smap.key(path + (inst,))
            return [
                Diagnostic(
                    key_pos,
                    "bad-name",
                    f"'{inst}' is not a valid name in {here}",
                    "names start with a letter or '_' and hold letters, digits and '_'",
                )
            ]
        return [Diagnostic(at, "bad-value", f"{here} has an invalid value {inst!r}", sch.get("description", ""))]
    limits = {
        "minimum": "at least",
        "maximum": "at most",
        "exclusiveMinimum": "more than",
        "minItems": "at least",
        "maxItems": "at most",
        "minProperties": "at least",
        "maxProperties": "at most",
        "minLength": "at least",
    }
    if v in limits:
        unit = {
            "minItems": " items",
            "maxItems": " items",
            "minProperties": " entries",
            "maxProperties": " entries",
            "minLength": " characters",
        }.get(v, "")
        return [
            Diagnostic(
                at,
                "bad-value",
                f"{here} must have {limits[v]} {error.validator_value}{unit}"
                if unit
                else f"{here} must be {limits[v]} {error.validator_value}",
                sch.get("description", ""),
            )
        ]
    return [Diagnostic(at, "schema", f"{here} is not valid here", sch.get("description", ""))]


def _pick_branch(error, inst, root: dict) -> list | None:
    """For a oneOf/anyOf failure, the errors of the branch the user evidently meant:
    the mapping variant whose required key is present, or the only branch of the right type."""
    branches = [_resolve(s, root) for s in error.validator_value]
    chosen = None
    if isinstance(inst, dict):
        for i, b in enumerate(branches):
            if b.get("type") == "object" and b.get("required") and b["required"][0] in inst:
                chosen = i
                break
        else:
            objs = [i for i, b in enumerate(branches) if b.get("type") == "object" and not b.get("required")]
            objs = objs or [i for i, b in enumerate(branches) if b.get("type") == "object"]
            chosen = objs[0] if len(objs) == 1 else None
    else:
        kind = {list: "array", str: "string", bool: "boolean"}.get(type(inst))
        same = [i for i, b in enumerate(branches) if b.get("type") == kind]
        chosen = same[0] if len(same) == 1 else None
    if chosen is None:
        return None
    subs = [e for e in error.context if e.schema_path and e.schema_path[0] == chosen]
    # errors inside a $ref'd branch: keep the deepest, most specific ones
    return subs or None
