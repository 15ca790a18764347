"""Every YAML block in the docs is checked, each as what it is, said by the comment above it:

- a complete spec (a block whose first key is `dfc: 1`) validates as it is;
- `<!-- check: in HOST [+ HOST2] -->`: a fragment (sections of a spec) merged into the
  spec file(s) named (each section's entries added to or replacing the host's), then
  validated whole;
- `<!-- check: each line in HOST [at PATH], HOST [at PATH], ... -->`: a block of
  alternatives, one line each: line k merged into the k-th host (the last one repeats),
  at the dotted PATH (`arrays.A`) or at the top, and validated;
- `<!-- check: each entry of SECTION in HOST, HOST, ... -->`: entry k of the block's
  section (a queue, a task) added to the k-th host (the last one repeats), and validated;
- `<!-- check: cluster file -->`: a cluster file, loaded for the jobs it lists; `<!-- check: profile -->`: a cost-model profile, loaded;
- `<!-- check: not a spec (WHY) -->`: not spec content (an editor's comment line).

A block with no such comment fails: every block is checked one way or another."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import yaml

from dfc.lang import load_spec_text
from dfc.lang.yamlsrc import load_yaml

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
BLOCK = re.compile(r"(?:<!-- check: (?P<how>.*?) -->\s*\n)?```yaml\n(?P<block>.*?)```", re.S)
BLOCKS = [
    (p.name, i, m["how"], m["block"])
    for p in sorted(DOCS.glob("*.md"))
    for i, m in enumerate(BLOCK.finditer(p.read_text()))
]


def _host(names: str) -> dict:
    """The spec files named (``A + B``), merged in order."""
    out: dict = {}
    for name in reversed(names.split("+")):  # the first named wins where two define a name
        _merge(out, _yaml((ROOT / name.strip()).read_text()))
    return out


def _yaml(text: str):
    """YAML as dfc reads it (1.2's core schema: `on:` is a string, not true)."""
    return load_yaml("doc.yaml", text.encode())[0]


def _merge(into: dict, part: dict, path: str = "") -> dict:
    """``part``'s sections into ``into`` (a mapping section's entries added or replaced; any
    other section replaced), at the dotted ``path``."""
    where = into
    for key in filter(None, path.split(".")):
        where = where.setdefault(key, {})
    for key, value in part.items():
        if key in MERGED and isinstance(value, dict) and isinstance(where.get(key), dict) and not path:
            where[key] = {**where[key], **value}
        else:
            where[key] = value
    return into


#: the sections whose entries a fragment adds to the host's (others it replaces)
MERGED = ("params", "cluster", "arrays", "scalars", "queues", "tasks")


def _validate(spec: dict, label: str, folder: Path) -> None:
    files = {n: a["init"]["file"] for n, a in spec.get("arrays", {}).items() if "file" in str(a.get("init"))}
    if files:  # a `.npy` the fragment names: made to fit the array (a header; no data written)
        bare = {**spec, "arrays": {n: {**a, "init": "zeros"} if n in files else a for n, a in spec["arrays"].items()}}
        (folder / "bare.yaml").write_text(yaml.safe_dump(bare, sort_keys=False))
        arrays = load_spec_text((folder / "bare.yaml").read_bytes(), "bare.yaml", local=False).arrays
        for name, file in files.items():
            (folder / file).parent.mkdir(parents=True, exist_ok=True)
            a = arrays[name]
            np.lib.format.open_memmap(folder / file, mode="w+", dtype=a.dtype, shape=a.shape).flush()
    (folder / "spec.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    load_spec_text((folder / "spec.yaml").read_bytes(), str(folder / "spec.yaml"), local=False)


@pytest.mark.parametrize("doc, index, how, block", BLOCKS, ids=[f"{d}#{i}" for d, i, _, _ in BLOCKS])
def test_doc_blocks(doc, index, how, block, tmp_path):
    label = f"{doc}#{index}"
    first = next((line for line in block.splitlines() if line and not line.startswith("#")), "")
    if how is None and first.startswith("dfc: 1") and "jobs:" not in block:
        load_spec_text(block.encode(), label)
        return
    assert how is not None, f"{label}: say how to check this block (<!-- check: ... --> above it)"
    if how.startswith("not a spec"):
        return
    if how == "profile":
        from dfc.cost.profile import load_profile

        (tmp_path / "profile.yaml").write_text(block)
        load_profile(str(tmp_path / "profile.yaml"))
        return
    if how == "cluster file":
        from dfc.runtime.clusters.file import load_cluster_file

        (tmp_path / "cluster.yaml").write_text(block)
        jobs = {  # as many tasks as the file lists
            job: len(h) if isinstance(h, list) else len(h["hosts"]) * h.get("tasks_per_host", 1)
            for job, h in _yaml(block)["jobs"].items()
        }
        load_cluster_file(str(tmp_path / "cluster.yaml"), jobs)
        return
    if how.startswith("in "):
        _validate(_merge(_host(how[3:]), _yaml(block)), label, tmp_path)
        return
    entries = re.match(r"each entry of (\w+) in (.*)", how)
    if entries:  # one entry of a section per host, in order
        section, hosts = entries[1], [h.strip() for h in entries[2].split(",")]
        for k, (key, value) in enumerate(_yaml(block)[section].items()):
            host = _host(hosts[min(k, len(hosts) - 1)])
            host[section] = {**host.get(section, {}), key: value}
            _validate(host, f"{label} {section}.{key}", tmp_path)
        return
    assert how.startswith("each line in "), f"{label}: unknown check {how!r}"
    hosts = [h.strip() for h in how[len("each line in ") :].split(",")]
    lines = [line for line in block.splitlines() if line.strip() and not line.startswith("#")]
    for k, line in enumerate(lines):
        host, _, path = hosts[min(k, len(hosts) - 1)].partition(" at ")
        _validate(_merge(_host(host), _yaml(line), path.strip()), f"{label} line {k + 1}", tmp_path)


def test_every_block_is_checked_and_there_is_a_complete_example():
    assert any(d == "spec.md" and how is None and b.startswith("dfc: 1") for d, _, how, b in BLOCKS)
    assert len(BLOCKS) >= 20
