import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dfc.cli import main
from dfc.lang import load_spec

ROOT = Path(__file__).resolve().parents[2]
SPECS = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "specs").glob("*.yaml"))


def test_the_four_programs_are_there():
    assert {Path(s).stem for s in SPECS} >= {"stream", "matmul", "cg", "fft"}


def test_valid_specs_exit_0_with_one_summary_line_each(monkeypatch, capsys):
    monkeypatch.chdir(ROOT)
    assert main(["validate", *SPECS]) == 0
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert err == "" and len(lines) == len(SPECS)
    assert "specs/matmul.yaml: ok: matmul: 3 arrays, 1 task, 64 tile tasks, 48 tiles" in lines


def test_json_of_a_valid_spec_is_an_empty_list(monkeypatch, capsys):
    monkeypatch.chdir(ROOT)
    assert main(["validate", "specs/cg.yaml", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out) == []


def test_set_overrides_params():
    spec = load_spec(ROOT / "specs" / "matmul.yaml", ["N=1024", "T = 256"])
    assert spec.params["N"] == 1024 and spec.arrays["A"].tiling.grid == (4, 4)
    assert spec.tasks["product"].instances == 64


def test_set_expressions_and_bad_values(monkeypatch, capsys):
    monkeypatch.chdir(ROOT)
    assert main(["validate", "specs/fft.yaml", "--set", "N=2**16"]) == 0
    capsys.readouterr()
    assert main(["validate", "specs/fft.yaml", "--set", "N"]) == 2
    assert "cannot read --set 'N'" in capsys.readouterr().err
    assert main(["validate", "specs/fft.yaml", "--set", "N=2**16+1"]) == 2
    assert "do not divide" in capsys.readouterr().err


def test_missing_file_and_directory(capsys):
    assert main(["validate", "no/such/spec.yaml"]) == 2
    assert "no such file" in capsys.readouterr().err
    assert main(["validate", str(ROOT / "specs")]) == 2
    assert "is a directory" in capsys.readouterr().err


def test_usage_errors_exit_2(capsys):
    assert main(["validate"]) == 2
    assert main(["validate", "x.yaml", "--format", "xml"]) == 2
    assert main(["frobnicate"]) == 2


def test_schema_command_prints_the_schema(capsys):
    assert main(["schema"]) == 0
    assert json.loads(capsys.readouterr().out)["title"] == "dfc spec"


def test_validate_is_fast_and_never_imports_tensorflow():
    code = (
        "import sys, time; t = time.perf_counter(); from dfc.cli import main;"
        f"rc = main(['validate', *{SPECS!r}]); dt = time.perf_counter() - t;"
        "assert 'tensorflow' not in sys.modules, 'tensorflow was imported';"
        "assert 'dfc.passes' not in sys.modules and 'networkx' not in sys.modules, 'the compiler was imported';"
        "print(rc, dt)"
    )
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    wall = time.perf_counter() - t0
    assert proc.returncode == 0, proc.stderr
    rc, inside = proc.stdout.split()[-2:]
    assert rc == "0"
    # four specs, one process: each is well under a second (generous for loaded CI machines)
    assert float(inside) < 2.0, f"validate took {inside}s in-process"
    assert wall < 10, f"the whole process took {wall:.1f}s"


def test_console_script_exit_codes_and_no_traceback(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("dfc: 1\nname: x\narrays: {A: {shape: [0]}}\n")
    proc = subprocess.run(
        [sys.executable, "-m", "dfc", "validate", str(bad)], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and "must be at least 1" in proc.stderr


@pytest.mark.parametrize("extra", [[], ["--format", "json"], ["--format", "dot"], ["--passes"]])
def test_plan_never_imports_tensorflow(extra):
    """Planning is the compiler and the cost model alone (issue 13): no TensorFlow."""
    spec = [] if extra == ["--passes"] else [SPECS[0]]
    code = (
        "import sys, io, contextlib; from dfc.cli import main; out = io.StringIO();\n"
        f"with contextlib.redirect_stdout(out): rc = main(['plan', *{spec!r}, *{extra!r}])\n"
        "assert 'tensorflow' not in sys.modules, 'tensorflow was imported'; print(rc)"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.split()[-1] == "0", proc.stderr
