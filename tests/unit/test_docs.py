"""Every complete spec in the docs (a YAML block that starts with `dfc: 1`) validates,
and every construct's snippet at least parses as YAML."""

import re
from pathlib import Path

import pytest
import yaml

from dfc.lang import load_spec_text

DOCS = Path(__file__).resolve().parents[2] / "docs"
BLOCKS = [
    (p.name, i, b)
    for p in sorted(DOCS.glob("*.md"))
    for i, b in enumerate(re.findall(r"```yaml\n(.*?)```", p.read_text(), re.S))
]


@pytest.mark.parametrize("doc, index, block", BLOCKS, ids=[f"{d}#{i}" for d, i, _ in BLOCKS])
def test_doc_blocks(doc, index, block):
    if block.startswith("dfc: 1"):
        load_spec_text(block.encode(), f"{doc}#{index}")
    else:  # a snippet with repeated keys shows alternatives: each line must parse on its own
        for line in block.splitlines():
            if line and not line.startswith((" ", "#")) and line.rstrip().endswith(("}", "]")):
                yaml.safe_load(line)


def test_there_is_a_complete_example():
    assert any(b.startswith("dfc: 1") for _, _, b in BLOCKS)
