"""Diagnostics: every user mistake as ``file:line:col: error: message``, the source line,
carets under the offending text and an actionable hint.

Every stage reports problems as :class:`Diagnostic` values; only the CLI renders them.
Lines and columns are 1-based, as editors count them.
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass, field
from typing import Iterable, Sequence


@dataclass(frozen=True, order=True)
class Pos:
    """A place in a source file: 1-based line and column, and the column one past the end
    of the marked text on that line (``end_col == col`` marks a single character)."""

    file: str = "<unknown>"
    line: int = 0
    col: int = 0
    end_col: int = 0

    def shifted(self, offset: int, length: int) -> Pos:
        """The position ``offset`` characters into this one, ``length`` characters long."""
        col = self.col + offset
        return Pos(self.file, self.line, col, col + max(length, 1) - 1)

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}" if self.line else self.file


@dataclass(frozen=True)
class Diagnostic:
    pos: Pos
    code: str
    message: str
    hint: str = ""
    severity: str = "error"

    def to_json(self) -> dict:
        return {
            "file": self.pos.file,
            "line": self.pos.line,
            "column": self.pos.col,
            "end_column": self.pos.end_col,
            "severity": self.severity,
            "code": self.code,
            "message": self.message,
            "hint": self.hint,
        }


class SpecError(Exception):
    """Raised with every diagnostic a stage found, never only the first."""

    def __init__(self, diagnostics: Sequence[Diagnostic]):
        self.diagnostics = list(diagnostics)
        super().__init__("\n".join(f"{d.pos}: {d.message}" for d in self.diagnostics))


@dataclass
class Collector:
    """Accumulates diagnostics so a stage can report all of them at once."""

    diagnostics: list[Diagnostic] = field(default_factory=list)

    def error(self, pos: Pos, code: str, message: str, hint: str = "") -> None:
        self.diagnostics.append(Diagnostic(pos, code, message, hint))

    def extend(self, diags: Iterable[Diagnostic]) -> None:
        self.diagnostics.extend(diags)

    def raise_if_any(self) -> None:
        if self.diagnostics:
            raise SpecError(sorted_unique(self.diagnostics))

    def __bool__(self) -> bool:
        return bool(self.diagnostics)


def sorted_unique(diags: Iterable[Diagnostic]) -> list[Diagnostic]:
    seen, out = set(), []
    for d in sorted(diags, key=lambda d: (d.pos.file, d.pos.line, d.pos.col, d.code, d.message)):
        key = (d.pos, d.code, d.message)
        if key not in seen:
            seen.add(key)
            out.append(d)
    return out


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """A hint naming the closest choice, or listing the choices when few and none is close."""
    choices = sorted(set(choices))
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    if close:
        return f"did you mean '{close[0]}'?"
    if choices and len(choices) <= 8:
        return "expected one of: " + ", ".join(f"'{c}'" for c in choices)
    return ""


def render_text(diags: Sequence[Diagnostic], sources: dict[str, str], color: bool = False) -> str:
    """Render diagnostics the way compilers do: location, message, source line, carets, hint."""
    red, cyan, bold, reset = ("\033[31m", "\033[36m", "\033[1m", "\033[0m") if color else ("",) * 4
    out: list[str] = []
    for d in diags:
        out.append(f"{bold}{d.pos}{reset}: {red}{d.severity}{reset}: {d.message}")
        text = sources.get(d.pos.file)
        if text is not None and d.pos.line >= 1:
            lines = text.splitlines()
            if d.pos.line <= len(lines):
                src = lines[d.pos.line - 1].replace("\t", " ")
                gutter = f"{d.pos.line:>5} | "
                out.append(f"{gutter}{src}")
                width = max(d.pos.end_col - d.pos.col + 1, 1)
                width = min(width, max(len(src) - d.pos.col + 1, 1))
                pad = " " * (len(gutter) - 2) + "| " + " " * max(d.pos.col - 1, 0)
                out.append(f"{pad}{red}{'^' * width}{reset}")
        if d.hint:
            out.append(f"  {cyan}hint{reset}: {d.hint}")
    return "\n".join(out)


def render_json(diags: Sequence[Diagnostic]) -> str:
    return json.dumps([d.to_json() for d in diags], indent=2)


__all__ = [
    "Pos",
    "Diagnostic",
    "SpecError",
    "Collector",
    "did_you_mean",
    "render_text",
    "render_json",
    "sorted_unique",
]
