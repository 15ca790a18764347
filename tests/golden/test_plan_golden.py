"""`dfc plan` text and JSON for small versions of the four specs, compared as text.
Rewrite with `pytest --update-golden` after a reviewed change."""

from pathlib import Path

import pytest

from dfc.cli import main

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).parent
SMALL = {
    "matmul": ["N=256", "T=128"],
    "cg": ["N=64", "iterations=10"],
    "fft": ["N=64", "P=4"],
    "stream": ["MB=1", "reps=3"],
}


@pytest.mark.parametrize("fmt", ["text", "json"])
@pytest.mark.parametrize("name", sorted(SMALL))
def test_plan_output(name, fmt, monkeypatch, capsys, update_golden):
    monkeypatch.chdir(ROOT)
    monkeypatch.setenv("NO_COLOR", "1")
    args = ["plan", f"specs/{name}.yaml", "--format", fmt]
    for s in SMALL[name]:
        args += ["--set", s]
    assert main(args) == 0
    out = capsys.readouterr().out
    expected = HERE / f"plan_{name}.{'txt' if fmt == 'text' else 'json'}"
    if update_golden:
        expected.write_text(out)
    assert expected.exists(), f"no {expected.name}: run pytest --update-golden and review it"
    assert out == expected.read_text()
