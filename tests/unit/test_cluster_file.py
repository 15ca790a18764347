"""Cluster files (dfc/runtime/clusters/file.py): the layout they give, and every mistake
reported with its position, checked as golden messages (tests/errors/cluster/NAME.yaml
against NAME.expected; `pytest --update-golden` rewrites them)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from dfc.diagnostics import SpecError, render_text
from dfc.runtime.clusters.file import cluster_from_text, load_cluster_file

HERE = Path(__file__).resolve().parents[1] / "errors" / "cluster"
JOBS = {"ps": 1, "worker": 2, "reducer": 2}


def test_both_forms_give_every_task_its_address():
    text = (
        b"dfc: 1\njobs:\n  ps: [node1:2222]\n  worker: ['[fd00::2]:2222', node3:2222]\n"
        b"  reducer: {hosts: [node1, node2], port: 3000}\n"
    )
    lay = cluster_from_text(text, "c.yaml", JOBS)
    assert lay.cluster_dict() == {
        "ps": ["node1:2222"],
        "worker": ["[fd00::2]:2222", "node3:2222"],
        "reducer": ["node1:3000", "node2:3000"],
    }
    assert lay.tasks_per_host() == {"node1": 2, "fd00::2": 1, "node3": 1, "node2": 1}
    more = cluster_from_text(b"dfc: 1\njobs:\n  worker: {hosts: [a, b], tasks_per_host: 2}\n", "c.yaml", {"worker": 4})
    assert more.cluster_dict() == {"worker": ["a:28500", "a:28501", "b:28500", "b:28501"]}


@pytest.mark.parametrize("case", sorted(p.stem for p in HERE.glob("*.yaml")))
def test_mistakes_are_reported_with_their_positions(case, monkeypatch, update_golden):
    monkeypatch.chdir(HERE)
    with pytest.raises(SpecError) as info:
        load_cluster_file(
            f"{case}.yaml",
            {"ps": 1, "worker": 2, "reducer": 2}
            if case == "many_mistakes"
            else {"ps": 1, "worker": 2}
            if case in ("schema_mistakes", "one_machine_one_port")
            else {"worker": 6}
            if case == "ports_beyond"
            else {"worker": 1},
        )
    got = render_text(info.value.diagnostics, {f"{case}.yaml": (HERE / f"{case}.yaml").read_text()}, False)
    expected = HERE / f"{case}.expected"
    if update_golden:
        expected.write_text(got)
    assert got == expected.read_text()


def test_a_fifo_is_refused_without_waiting(tmp_path):
    os.mkfifo(tmp_path / "c.yaml")
    with pytest.raises(SpecError, match="is a FIFO"):
        load_cluster_file(str(tmp_path / "c.yaml"), {"worker": 1})


def test_the_cluster_schema_is_valid_and_shipped_with_the_package():
    import jsonschema

    from dfc.lang.schema import schema, schema_text

    jsonschema.Draft202012Validator.check_schema(schema("cluster"))
    repo = Path(__file__).resolve().parents[2] / "schemas" / "cluster.schema.json"
    assert schema_text("cluster") == repo.read_text()


def test_dfc_run_with_a_bad_cluster_file_or_engine_is_a_usage_error(tmp_path, capsys):
    from dfc.cli import main

    spec = str(Path(__file__).resolve().parents[2] / "specs" / "stream.yaml")
    bad = tmp_path / "c.yaml"
    bad.write_text("dfc: 1\njobs:\n  ps: [a:1]\n")
    assert main(["run", spec, "--cluster", str(bad)]) == 2
    assert "c.yaml:2:1: error: the spec's job 'worker' (1 task) is not in the cluster file" in capsys.readouterr().err
    assert main(["run", spec, "--cluster", str(bad), "--engine", "numpy"]) == 2
    assert "a cluster needs the TF engine" in capsys.readouterr().err
    assert main(["run", spec, "--cluster", "slurm"]) == 2
    assert "is not set: --cluster slurm works inside a Slurm allocation" in capsys.readouterr().err
    good = tmp_path / "good.yaml"
    good.write_text("dfc: 1\njobs:\n  ps: [127.0.0.2:2222]\n  worker: [127.0.0.3:2224]\n")
    assert main(["run", spec, "--cluster", str(good)]) == 2  # stream sweeps MB: one run per `dfc serve`
    assert "the spec sweeps MB, and each point of a sweep runs on fresh servers" in capsys.readouterr().err
