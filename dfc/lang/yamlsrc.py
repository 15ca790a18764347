"""Safe YAML loading that remembers where every value came from.

Specs are untrusted input. This loader:

- decodes strictly as UTF-8 and points at the first bad byte;
- resolves scalars as YAML 1.2's core schema does (``on:``/``yes``/``no`` stay strings,
  ``1e-10`` is a float) so that ``on: worker`` means what it says;
- recognises the symptom of a ``# comment`` inside a one-line ``{...}`` or ``[...]``
  (the comment runs to the end of the line, closing bracket included, and the parser
  fails on the next line) and says so where the comment starts;
- rejects duplicate keys (PyYAML silently keeps the last), tabs used for indentation,
  nesting deeper than :data:`MAX_DEPTH`, documents that expand past :data:`MAX_NODES`
  nodes through aliases (alias bombs), recursive aliases and exotic tags;
- records the position of every key and value in a :class:`SourceMap` keyed by path,
  so that later stages report errors at the right line and column.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from ..diagnostics import Collector, Diagnostic, Pos, SpecError

MAX_BYTES = 4 * 2**20
MAX_DEPTH = 64
MAX_NODES = 100_000

Path = tuple  # of str keys and int indices


@dataclass
class SourceMap:
    """Where each value (and each mapping key) of a loaded document sits in its file."""

    file: str
    text: str
    values: dict[Path, Pos] = field(default_factory=dict)
    keys: dict[Path, Pos] = field(default_factory=dict)
    # For single-line plain or simply quoted strings: the position of the first character
    # of the string's content, so expression errors can point inside the string.
    content: dict[Path, Pos] = field(default_factory=dict)

    def value(self, path: Path) -> Pos:
        """The position of the value at ``path``, or of its nearest recorded ancestor."""
        path = tuple(path)
        while path not in self.values and path:
            path = path[:-1]
        return self.values.get(path, Pos(self.file, 1, 1, 1))

    def key(self, path: Path) -> Pos:
        path = tuple(path)
        return self.keys.get(path) or self.value(path)

    def content_start(self, path: Path) -> Pos | None:
        return self.content.get(tuple(path))


def _core_schema_loader() -> type[yaml.SafeLoader]:
    """A SafeLoader whose implicit scalar types follow YAML 1.2's core schema."""

    class Loader(yaml.SafeLoader):
        pass

    null = "tag:yaml.org,2002:null"
    Loader.yaml_implicit_resolvers = {
        ch: [(tag, rx) for tag, rx in resolvers if tag == null]
        for ch, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }
    Loader.add_implicit_resolver(
        "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
    )
    Loader.add_implicit_resolver(
        "tag:yaml.org,2002:int",
        re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$"),
        list("-+0123456789"),
    )
    Loader.add_implicit_resolver(
        "tag:yaml.org,2002:float",
        re.compile(
            r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
            r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
        ),
        list("-+0123456789."),
    )
    return Loader


_Loader = _core_schema_loader()


def _scalar(node: ScalarNode) -> Any:
    tag, v = node.tag, node.value
    if tag.endswith(":str"):
        return v
    if tag.endswith(":null"):
        return None
    if tag.endswith(":bool"):
        return v.lower() == "true"
    if tag.endswith(":int"):
        return int(v, 0) if v[:2] in ("0x", "0o") else int(v, 10)
    if tag.endswith(":float"):
        low = v.lower()
        if low.endswith(".inf"):
            return float(low.replace(".inf", "inf"))
        if low == ".nan":
            return float("nan")
        return float(v)
    raise ValueError(f"unsupported YAML tag '{tag}'")


def _pos(file: str, node: Node) -> Pos:
    s, e = node.start_mark, node.end_mark
    end = e.column if e.line == s.line and e.column > s.column else s.column + 1
    return Pos(file, s.line + 1, s.column + 1, end)


def _decode(file: str, data: bytes) -> str:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        before = data[: e.start]
        line = before.count(b"\n") + 1
        col = e.start - (before.rfind(b"\n") + 1) + 1
        raise SpecError(
            [
                _diag(
                    file,
                    line,
                    col,
                    "encoding",
                    f"the file is not valid UTF-8 (byte 0x{data[e.start]:02x})",
                    "save the spec as UTF-8 text",
                )
            ]
        ) from None
    return text.removeprefix("\ufeff")


def _diag(file: str, line: int, col: int, code: str, message: str, hint: str = "") -> Diagnostic:
    return Diagnostic(Pos(file, line, col, col), code, message, hint)


def _yaml_error(file: str, text: str, err: yaml.YAMLError) -> SpecError:
    mark = getattr(err, "problem_mark", None) or getattr(err, "context_mark", None)
    line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
    problem = getattr(err, "problem", None) or str(err)
    lines = text.splitlines()
    if lines and line > len(lines):  # at the end of the stream: point at the last line
        line, col = len(lines), len(lines[-1]) + 1
    src = lines[line - 1] if 0 < line <= len(lines) else ""
    if "\t" in problem or (col - 1 < len(src) and src[col - 1] == "\t") or "'\\t'" in problem:
        return SpecError(
            [
                _diag(
                    file,
                    line,
                    col,
                    "yaml-tab",
                    "tab character in indentation",
                    "YAML indents with spaces: replace the tab with spaces",
                )
            ]
        )
    context = getattr(err, "context", None)
    if "flow" in f"{problem} {context}":
        start = getattr(err, "context_mark", None)
        first = min(start.line + 1 if start else line, line - 1)
        comment = _comment_in_flow(file, lines, max(first, 1), line)
        if comment:
            at, opened = comment
            flow, closing = f"{opened}...{_PAIRS[opened]}", _PAIRS[opened]
            return SpecError(
                [
                    Diagnostic(
                        at,
                        "yaml-comment",
                        f"this comment inside {flow} runs to the end of the line and hides the closing '{closing}'",
                        f"comments are not allowed inside {flow} on one line: move the comment "
                        f"after the '{closing}', or write the "
                        f"{'list' if opened == '[' else 'mapping'} as an indented block",
                    )
                ]
            )
    message = f"YAML syntax error: {problem}" + (f" ({context})" if context else "")
    hint = "check the indentation and that every ':' and '-' is followed by a space"
    if "single document" in f"{problem} {context}" or "another document" in f"{problem} {context}":
        hint = "a spec is one YAML document: remove the '---' separator and what follows"
    return SpecError([_diag(file, line, col, "yaml-syntax", message, hint)])


_PAIRS = {"{": "}", "[": "]"}


def _comment_in_flow(file: str, lines: list[str], first: int, last: int) -> tuple[Pos, str] | None:
    """Where the first '#' comment in lines ``first`` to ``last`` sits (to the end of its
    line) that starts inside an open ``{`` or ``[`` and holds its closing bracket, and that
    opening bracket; None if there is none. A '#' in a quoted string is no comment: a quote
    opens a string where a value can start (one pass over each line, as YAML reads it)."""
    stack: list[str] = []
    for n in range(first, min(last, len(lines)) + 1):
        text, quote, prev, i = lines[n - 1], "", "", 0
        while i < len(text):
            c = text[i]
            if quote:
                if c == "\\" and quote == '"':
                    i += 1
                elif c == quote:
                    quote = ""
            elif c in "'\"" and prev in ("", ":", ",", "[", "{", "-"):
                quote = c
            elif c == "#" and (i == 0 or text[i - 1] in " \t"):
                if stack and _PAIRS[stack[-1]] in text[i:]:
                    return Pos(file, n, i + 1, len(text.rstrip())), stack[-1]
                break
            elif c in _PAIRS:
                stack.append(c)
            elif c in "]}" and stack:
                stack.pop()
            prev = prev if c in " \t" else c
            i += 1
    return None


def _check_depth(file: str, text: str) -> None:
    """Walk the event stream (iteratively: no recursion) and refuse very deep nesting."""
    depth = 0
    try:
        for event in yaml.parse(text, Loader=_Loader):
            if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
                depth += 1
                if depth > MAX_DEPTH:
                    m = event.start_mark
                    line, col = (m.line + 1, m.column + 1) if m is not None else (1, 1)
                    raise SpecError(
                        [
                            _diag(
                                file,
                                line,
                                col,
                                "yaml-depth",
                                f"the document nests deeper than {MAX_DEPTH} levels",
                                "a spec never needs this much nesting",
                            )
                        ]
                    )
            elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
                depth -= 1
    except yaml.YAMLError as err:
        raise _yaml_error(file, text, err) from None


def _expanded_size(root: Node, file: str) -> int:
    """Number of nodes the document expands to once aliases are followed (memoised, so
    an alias bomb is measured without being expanded); a recursive alias is an error."""
    size: dict[int, int] = {}
    on_stack: set[int] = set()
    stack: list[tuple[Node, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        key = id(node)
        if done:
            on_stack.discard(key)
            children = _children(node)
            size[key] = min(1 + sum(size[id(c)] for c in children), 10 * MAX_NODES)
            continue
        if key in size:
            continue
        if key in on_stack:
            p = _pos(file, node)
            raise SpecError(
                [
                    _diag(
                        file,
                        p.line,
                        p.col,
                        "yaml-alias",
                        "recursive alias: a node contains itself",
                        "remove the alias that refers to its own anchor",
                    )
                ]
            )
        on_stack.add(key)
        stack.append((node, True))
        for child in _children(node):
            if id(child) not in size:
                if id(child) in on_stack:
                    p = _pos(file, child)
                    raise SpecError(
                        [
                            _diag(
                                file,
                                p.line,
                                p.col,
                                "yaml-alias",
                                "recursive alias: a node contains itself",
                                "remove the alias that refers to its own anchor",
                            )
                        ]
                    )
                stack.append((child, False))
    return size[id(root)]


def _children(node: Node) -> list[Node]:
    if isinstance(node, SequenceNode):
        return list(node.value)
    if isinstance(node, MappingNode):
        return [n for kv in node.value for n in kv]
    return []


def load_yaml(file: str, data: bytes) -> tuple[Any, SourceMap]:
    """Parse one YAML document into plain Python values and a :class:`SourceMap`.

    Raises :class:`SpecError` with every problem that can be found at this level.
    """
    if len(data) > MAX_BYTES:
        raise SpecError(
            [
                _diag(
                    file,
                    1,
                    1,
                    "too-large",
                    f"the file is {len(data) / 2**20:.1f} MiB; a spec may be at most {MAX_BYTES // 2**20} MiB",
                    "keep data in .npy files and refer to them with `init: {file: ...}`",
                )
            ]
        )
    text = _decode(file, data)
    if not text.strip() or all(not ln.strip() or ln.lstrip().startswith("#") for ln in text.splitlines()):
        raise SpecError(
            [
                _diag(
                    file,
                    1,
                    1,
                    "empty",
                    "the file is empty",
                    "a spec starts with `dfc: 1` and a `name:`; see docs/spec.md",
                )
            ]
        )
    _check_depth(file, text)
    loader = _Loader(text)
    try:
        root = loader.get_single_node()
    except yaml.YAMLError as err:
        raise _yaml_error(file, text, err) from None
    except RecursionError:
        raise SpecError([_diag(file, 1, 1, "yaml-depth", "the document nests too deeply")]) from None
    finally:
        loader.dispose()
    if root is None:
        raise SpecError(
            [_diag(file, 1, 1, "empty", "the file holds no YAML document", "a spec starts with `dfc: 1` and a `name:`")]
        )
    n = _expanded_size(root, file)
    if n > MAX_NODES:
        p = _pos(file, root)
        raise SpecError(
            [
                _diag(
                    file,
                    p.line,
                    p.col,
                    "yaml-alias",
                    f"the document expands to more than {MAX_NODES:,} nodes through aliases",
                    "refuse to expand: this looks like an alias bomb; write the values out or use fewer aliases",
                )
            ]
        )
    smap = SourceMap(file, text)
    errors = Collector()
    try:
        value = _convert(root, (), smap, errors)
    except RecursionError:
        raise SpecError([_diag(file, 1, 1, "yaml-depth", "the document nests too deeply through aliases")]) from None
    errors.raise_if_any()
    return value, smap


def _convert(node: Node, path: Path, smap: SourceMap, errors: Collector) -> Any:
    pos = _pos(smap.file, node)
    smap.values.setdefault(path, pos)
    if isinstance(node, ScalarNode):
        try:
            value = _scalar(node)
        except ValueError as e:
            errors.error(pos, "yaml-tag", str(e), "use plain numbers, strings, lists and mappings")
            return None
        if isinstance(value, str) and node.start_mark.line == node.end_mark.line:
            if node.style in (None, "", "'") or (node.style == '"' and "\\" not in value):
                quoted = 1 if node.style in ("'", '"') else 0
                if node.style != "'" or "''" not in node.value:
                    smap.content.setdefault(path, pos.shifted(quoted, len(value)))
        return value
    if isinstance(node, SequenceNode):
        return [_convert(child, path + (i,), smap, errors) for i, child in enumerate(node.value)]
    out: dict[str, Any] = {}
    for knode, vnode in node.value:
        kpos = _pos(smap.file, knode)
        if isinstance(knode, ScalarNode) and knode.style in ("'", '"'):
            kpos = kpos.shifted(1, len(knode.value))
        if not isinstance(knode, ScalarNode) or knode.tag.endswith(":null"):
            errors.error(kpos, "yaml-key", "a mapping key must be a plain name", "write keys as names such as `shape:`")
            continue
        key = knode.value
        if key in out:
            first = smap.keys[path + (key,)]
            errors.error(
                kpos,
                "duplicate-key",
                f"duplicate key '{key}' (first defined at line {first.line})",
                "YAML would silently keep only the last one: remove or rename one of them",
            )
            continue
        smap.keys[path + (key,)] = kpos
        out[key] = _convert(vnode, path + (key,), smap, errors)
    return out
