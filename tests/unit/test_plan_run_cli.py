import json
import shutil
from pathlib import Path

import pytest

from dfc.cli import main

ROOT = Path(__file__).resolve().parents[2]
SMALL = ["--set", "N=256", "--set", "T=64"]


def test_passes_are_listed(capsys):
    assert main(["plan", "--passes"]) == 0
    out = capsys.readouterr().out
    assert [line.split()[0] for line in out.splitlines()] == [
        "build",
        "expand",
        "queues",
        "cse",
        "fuse",
        "place",
        "collective",
        "combine",
        "comm",
    ]


def test_print_after_shows_the_ir(capsys):
    assert main(["plan", str(ROOT / "specs/matmul.yaml"), *SMALL, "--print-after", "expand"]) == 0
    out = capsys.readouterr().out
    assert "product[i=0,j=0,k=0]: compute matmul float32[64, 64]" in out
    assert main(["plan", str(ROOT / "specs/matmul.yaml"), "--print-after", "nosuch"]) == 2


def test_dot_collapses_large_graphs(capsys):
    assert main(["plan", str(ROOT / "specs/matmul.yaml"), *SMALL, "--format", "dot"]) == 0
    big = capsys.readouterr().out
    assert big.startswith('digraph "matmul"') and "product compute" in big and "x32 on" in big
    assert main(["plan", str(ROOT / "specs/matmul.yaml"), "--set", "N=256", "--set", "T=128", "--format", "dot"]) == 0
    small = capsys.readouterr().out
    assert '"product[i=0,j=0,k=0]"' in small and "rarrow" in small  # send/recv visible


def test_gantt_svg_and_json_plan(tmp_path, capsys):
    gantt = tmp_path / "g.svg"
    out = tmp_path / "plan.json"
    assert (
        main(
            [
                "plan",
                str(ROOT / "specs/cg.yaml"),
                "--set",
                "N=64",
                "--format",
                "json",
                "-o",
                str(out),
                "--gantt",
                str(gantt),
            ]
        )
        == 0
    )
    plan = json.loads(out.read_text())
    for key in ("nodes", "edges", "devices", "strategy", "predicted_makespan_s", "lower_bound_s", "bytes_moved"):
        assert key in plan
    assert plan["predicted_makespan_s"] >= plan["lower_bound_s"] > 0
    assert gantt.read_text().startswith("<svg") and "worker:0" in gantt.read_text()


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz is not installed")
def test_svg_picture(tmp_path):
    out = tmp_path / "p.svg"
    assert (
        main(["plan", str(ROOT / "specs/fft.yaml"), "--set", "N=64", "--set", "P=4", "--format", "svg", "-o", str(out)])
        == 0
    )
    assert "<svg" in out.read_text()


def test_pictures_without_graphviz_say_what_to_install(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    assert (
        main(
            [
                "plan",
                str(ROOT / "specs/fft.yaml"),
                "--set",
                "N=64",
                "--set",
                "P=4",
                "--format",
                "png",
                "-o",
                str(tmp_path / "p.png"),
            ]
        )
        == 1
    )
    assert "Graphviz" in capsys.readouterr().err


def test_bad_profile_is_a_usage_error(tmp_path, capsys):
    prof = tmp_path / "p.yaml"
    prof.write_text("cpu_flop: {float32: 1}\n")
    assert main(["plan", str(ROOT / "specs/fft.yaml"), "--profile", str(prof)]) == 2
    assert "unknown key 'cpu_flop'" in capsys.readouterr().err


def test_profile_changes_the_prediction(tmp_path, capsys):
    fast = tmp_path / "fast.yaml"
    fast.write_text("same_host: {latency: 1e-6, bandwidth: 1e11}\n")
    args = ["plan", str(ROOT / "specs/stream.yaml"), "--set", "MB=8", "--format", "json"]
    main(args)
    slow = json.loads(capsys.readouterr().out)["predicted_makespan_s"]
    main(args + ["--profile", str(fast)])
    assert json.loads(capsys.readouterr().out)["predicted_makespan_s"] < slow


def test_run_numpy_writes_the_report(tmp_path, capsys):
    out = tmp_path / "r.json"
    assert main(["run", str(ROOT / "specs/cg.yaml"), "--set", "N=128", "--engine", "numpy", "--json", str(out)]) == 0
    r = json.loads(out.read_text())
    assert r["name"] == "cg" and r["engine"] == "numpy" and r["verified"] is True
    assert {"init", "compute", "verify", "total"} <= set(r["seconds"])
    assert r["metrics"]["flops"] == r["iterations_run"] * 2 * 128**2 and r["metrics"]["gflops"] > 0
    assert r["params"]["N"] == 128 and r["predicted_seconds"] > 0


def test_run_exits_1_when_verification_fails(tmp_path, capsys):
    text = (ROOT / "specs/matmul.yaml").read_text().replace("freivalds: C == A @ B", "freivalds: C == B @ A")
    spec = tmp_path / "wrong.yaml"
    spec.write_text(text)
    assert main(["run", str(spec), "--set", "N=128", "--set", "T=64"]) == 1
    assert "VERIFICATION FAILED" in capsys.readouterr().out


def test_the_profile_example_in_the_docs_loads(tmp_path):
    """docs/compiler.md's profile file is one: every key it names is taken."""
    from dfc.cost.profile import load_profile

    text = (ROOT / "docs" / "compiler.md").read_text()
    block = next(b.split("\n", 1)[1] for b in text.split("```yaml")[1:] if b.split("\n", 1)[1].startswith("# profile"))
    path = tmp_path / "profile.yaml"
    path.write_text(block.split("```", 1)[0])
    p = load_profile(str(path))
    assert p.cpu_flops["float64"] == 5.0e10 and p.same_host.cpu == 4.0e-10 and p.tasks_per_host == 2


def test_plan_sweep_predicts_strong_scaling_over_a_job_or_a_param(capsys, monkeypatch, tmp_path):
    """`dfc plan --sweep`: a job's tasks or a param, a row per value with the predicted
    makespan, its bound and the speedup over the first; with a profile of nodes (one task
    a node), adding workers adds compute; mistakes are usage errors."""
    import json as _json

    monkeypatch.chdir(ROOT)
    args = [
        "plan",
        "specs/matmul.yaml",
        "--profile",
        "examples/profiles/cpu-node.yaml",
        "--set",
        "N=8192",
        "--set",
        "T=2048",
    ]
    assert main([*args, "--sweep", "worker=1,2,4", "--format", "json"]) == 0
    rows = _json.loads(capsys.readouterr().out)["rows"]
    assert [r["worker"] for r in rows] == ["1", "2", "4"] and [r["devices"] for r in rows] == [3, 4, 6]
    assert rows[0]["speedup"] == 1.0 and 1.5 < rows[1]["speedup"] < rows[2]["speedup"]
    assert all(r["lower_bound_s"] <= r["predicted_s"] for r in rows)
    assert main(["plan", "specs/cg.yaml", "--sweep", "P=2,4"]) == 0
    out = capsys.readouterr().out
    assert "predicted strong scaling over P" in out and "built-in defaults" in out
    # the plot: a line of the predicted speedups, one point a value, the ideal beside it
    svg_out = tmp_path / "sweep.svg"
    assert main([*args, "--sweep", "worker=1,2,4", "--format", "svg", "-o", str(svg_out)]) == 0
    drawn = svg_out.read_text()
    assert drawn.startswith("<svg") and drawn.count("<polyline") == 2 and drawn.count("<circle") == 6
    for bad in ("Q=2", "worker=x", "worker="):
        assert main(["plan", "specs/cg.yaml", "--sweep", bad]) == 2
    assert main(["plan", "specs/cg.yaml", "--sweep", "P=2,4", "--format", "dot"]) == 2
