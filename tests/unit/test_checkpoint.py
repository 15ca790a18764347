"""The checkpoint folder without TensorFlow: slots, manifests, what a resume must match."""

from __future__ import annotations

import json
import os

import pytest

from dfc.lang import load_spec
from dfc.passes import compile_spec
from dfc.runtime.checkpoint import (
    SLOTS,
    Checkpointer,
    CheckpointError,
    Store,
    default_folder,
    identity,
    mismatch,
    state_variables,
)

SPEC = os.path.join(os.path.dirname(__file__), "..", "..", "specs", "cg.yaml")


def cg(*sets: str):
    spec = load_spec(SPEC, ["N=64", *sets])
    return spec, compile_spec(spec)


def test_the_state_is_what_the_program_writes():
    spec, g = cg()
    saved = state_variables(g)
    assert {"x[0]", "x[1]", "r[0]", "p[1]", "q[0]", "scalar:rr", "scalar:bb"} <= set(saved)
    assert not any(v.startswith(("A[", "b[")) for v in saved)  # never written: made again by their init


def test_identity_ignores_loop_checkpoint_but_not_params_or_the_cluster(tmp_path):
    spec, g = cg()
    text = open(SPEC).read()
    other = tmp_path / "cg.yaml"
    other.write_text(text.replace("checkpoint: {every: 50}", "checkpoint: {every: 7, path: ck}"))
    spec2 = load_spec(str(other), ["N=64"])
    assert identity(spec2, compile_spec(spec2))["spec_sha256"] == identity(spec, g)["spec_sha256"]
    assert spec2.loop.checkpoint.path == str(tmp_path / "ck")  # from the spec's folder
    saved = {"format": 1, **identity(spec, g)}
    assert mismatch(saved, identity(spec, g)) == []
    assert mismatch(saved, identity(*cg("shift=3"))) == ["param shift: 4 then, 3 now"]
    four = mismatch(saved, identity(*cg("P=4")))
    assert "param P: 2 then, 4 now" in four and any(
        m.startswith("the cluster: reducer: 1, worker: 2 then") for m in four
    )
    other.write_text(text.replace("b - A @ x", "b - A @ x + 0"))
    spec3 = load_spec(str(other), ["N=64"])
    assert mismatch(saved, identity(spec3, compile_spec(spec3))) == ["the spec changed (beyond `loop.checkpoint`)"]


def test_slots_manifests_and_the_newest_first(tmp_path):
    store = Store(str(tmp_path / "ck"))
    store.prepare()
    assert store.complete() == ([], [])
    for s, it in ((0, 50), (1, 100)):
        store.begin(s)
        store.commit(s, {"iteration": it, "slot": s})
    assert [m["iteration"] for m in store.complete()[0]] == [100, 50]
    store.begin(0)  # being written again: no longer complete
    assert [m["iteration"] for m in store.complete()[0]] == [100]
    (tmp_path / "ck" / "slot-0" / "manifest.json").write_text("{not json")
    found, skipped = store.complete()
    assert [m["iteration"] for m in found] == [100] and "unreadable manifest" in skipped[0]
    assert not [f for f in os.listdir(tmp_path / "ck" / "slot-1") if f.startswith(".")]  # no temporary left
    assert SLOTS == 2


def test_a_folder_that_cannot_be_made_is_refused(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(CheckpointError, match="checkpoint folder .*file/ck: Not a directory"):
        Store(str(tmp_path / "file" / "ck")).prepare()


def test_resume_refuses_another_run_and_an_empty_folder(tmp_path):
    spec, g = cg()
    store = Store(str(tmp_path))
    store.prepare()
    ck = Checkpointer(store, 50, identity(spec, g), say=lambda *a: None)
    with pytest.raises(CheckpointError, match="no complete checkpoint"):
        ck.check()
    store.commit(0, {"format": 1, **identity(*cg("shift=3")), "iteration": 50, "slot": 0})
    with pytest.raises(CheckpointError, match="is of another run: param shift: 3 then, 4 now"):
        ck.check()


def test_the_default_folder(tmp_path):
    spec, _ = cg()
    assert default_folder(spec, None) == os.path.join("checkpoints", "cg")
    assert default_folder(spec, "out") == os.path.join("out", "checkpoints")
    assert default_folder(spec, "out", ("P", 4)) == os.path.join("out", "checkpoints", "P=4")
    json.dumps(identity(spec, compile_spec(spec)))  # a manifest is JSON
