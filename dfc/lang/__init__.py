"""The spec language: load a YAML program, validate it, and return a frozen :class:`Spec`.

``load_spec`` runs the stages in order and stops at the first stage that found errors,
reporting every error of that stage: YAML (syntax, encoding, duplicates, bombs), then the
JSON Schema (structure, unknown keys, enums), then building (params, sizes, tilings,
expressions), then semantic checks (names, shapes, queues, cycles, memory). Building and
the checks are reported together when building only had to leave out expressions that do
not parse: a typo in one expression never hides the mistakes in the others.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

from ..diagnostics import Diagnostic, Pos, SpecError, sorted_unique
from ..inputs import InputError, read_bounded
from .build import Override, build_spec
from .checks import check_spec
from .model import Spec
from .schema import check_schema, schema, schema_text
from .yamlsrc import MAX_BYTES, load_yaml

__all__ = ["load_spec", "load_spec_text", "Spec", "SpecError", "schema", "schema_text", "Override"]


def load_spec_text(data: bytes, file: str, overrides: Iterable[str] = (), local: bool = True) -> Spec:
    """Validate spec bytes that claim to come from ``file``; raise SpecError with every error.
    ``local``: the spec is to run on the local cluster, whose servers' memory counts too."""
    value, smap = load_yaml(file, data)
    if not isinstance(value, dict):
        raise SpecError(
            [
                Diagnostic(
                    smap.value(()),
                    "bad-type",
                    "a spec is a mapping of keys such as `dfc:`, `name:` and `arrays:`",
                    "start the file with `dfc: 1`",
                )
            ]
        )
    diags = check_schema(value, smap)
    if diags:
        raise SpecError(sorted_unique(diags))
    spec, errors, checkable = build_spec(value, smap, [Override(o) for o in overrides], file)
    if errors and not checkable:
        raise SpecError(sorted_unique(errors.diagnostics))
    diags = [*errors.diagnostics, *check_spec(spec, local)]
    if diags:
        raise SpecError(sorted_unique(diags))
    return spec


def load_spec(path: str | Path, overrides: Iterable[str] = (), local: bool = True) -> Spec:
    """Load and validate the spec at ``path`` (``local``: see :func:`load_spec_text`)."""
    file = str(path)
    try:
        data = read_bounded(file, MAX_BYTES, "a spec")
    except InputError as e:
        hint = "keep data in .npy files and refer to them with `init: {file: ...}`" if "MiB" in str(e) else ""
        raise SpecError([Diagnostic(Pos(file), "no-file", str(e), hint)]) from None
    return load_spec_text(data, file, overrides, local)
