"""One bad spec per mistake: `dfc validate` must exit 2 and print exactly the expected
message (location, source line, carets, hint). Rewrite with `pytest --update-golden`."""

from pathlib import Path

import pytest

from dfc.cli import main

HERE = Path(__file__).parent
CASES = sorted(p.stem for p in HERE.glob("*.yaml"))


def test_there_are_enough_cases():
    assert len(CASES) >= 30


@pytest.mark.parametrize("case", CASES)
def test_error_message(case, monkeypatch, capsys, update_golden):
    monkeypatch.chdir(HERE)
    monkeypatch.setenv("NO_COLOR", "1")
    args_file = HERE / f"{case}.args"
    extra = args_file.read_text().split() if args_file.exists() else []
    rc = main(["validate", f"{case}.yaml", *extra])
    out, err = capsys.readouterr()
    assert rc == 2, f"expected exit 2, got {rc}\n{out}{err}"
    assert "Traceback" not in err and "internal error" not in err
    assert out == ""
    expected = HERE / f"{case}.expected"
    if update_golden:
        expected.write_text(err)
    assert expected.exists(), f"no {expected.name}: run pytest --update-golden and review it"
    assert err == expected.read_text()


def test_json_format_lists_every_diagnostic(monkeypatch, capsys):
    import json

    monkeypatch.chdir(HERE)
    rc = main(["validate", "many_errors.yaml", "--format", "json"])
    diags = json.loads(capsys.readouterr().out)
    assert rc == 2
    assert len(diags) == 3
    first = diags[0]
    assert set(first) >= {"file", "line", "column", "severity", "code", "message", "hint"}
    assert (first["file"], first["line"], first["column"], first["code"]) == ("many_errors.yaml", 6, 26, "tile-divide")
    assert [d["code"] for d in diags] == ["tile-divide", "unknown-job", "undefined-name"]
