"""Checkpoint ops (``loop.checkpoint``): each task saves and restores its own state
variables on its own machine (dfc/runtime/checkpoint.py drives them)."""

from __future__ import annotations

from dataclasses import dataclass

from ..ir.devices import device_name, task_of
from .state import Lowering


@dataclass
class Checkpointing:
    """Run ``save`` feeding ``folder`` (the slot), ``stamp`` and ``note`` (the manifest, a
    copy kept next to each owner's files); run ``restore`` with ``stamps`` (one per owner)."""

    folder: object
    stamp: object
    note: object
    save: object
    restore: object
    stamps: list
    owners: list[str]  # 'job:task', in the order of ``stamps``
    nbytes: int


def checkpointing(L: Lowering, state: list[str]) -> Checkpointing:
    """Save and restore ops for the ``state`` variables, on their owners' CPUs."""
    tf = L.tf
    string = lambda name: tf.compat.v1.placeholder(tf.string, [], name=name)  # noqa: E731
    folder, stamp, note = string("dfc_checkpoint_dir"), string("dfc_checkpoint_stamp"), string("dfc_checkpoint_note")
    by_task: dict[tuple, list[str]] = {}
    for name in state:
        by_task.setdefault(task_of(L.node(name).device), []).append(name)
    saves, assigns, stamps, owners = [], [], [], []
    for (job, task), names in sorted(by_task.items()):
        keys = [*names, "dfc:stamp"]
        values = []
        for name in names:
            with tf.device(L.node(name).device):
                values.append(L.vars[name].read_value())
        with tf.device(device_name(job, task)):
            prefix = tf.strings.join([folder, f"{job}-{task}"], "/")
            # WriteFile makes the folder on the owner's machine, which SaveV2 does not
            copy = tf.io.write_file(tf.strings.join([prefix, ".json"]), note)
            with tf.control_dependencies([copy]):
                saves.append(
                    tf.raw_ops.SaveV2(
                        prefix=prefix, tensor_names=keys, shape_and_slices=[""] * len(keys), tensors=[*values, stamp]
                    )
                )
            loaded = tf.raw_ops.RestoreV2(
                prefix=prefix,
                tensor_names=keys,
                shape_and_slices=[""] * len(keys),
                dtypes=[*(L.vars[n].dtype for n in names), tf.string],
            )
        for name, value in zip(names, loaded):
            with tf.device(L.node(name).device):
                assigns.append(tf.raw_ops.AssignVariableOp(resource=L.vars[name].handle, value=value))
        stamps.append(loaded[-1])
        owners.append(f"{job}:{task}")
    nbytes = sum(L.node(n).out_bytes for ns in by_task.values() for n in ns)
    return Checkpointing(
        folder,
        stamp,
        note,
        tf.group(*saves, name="dfc_checkpoint_save"),
        tf.group(*assigns, name="dfc_checkpoint_restore"),
        stamps,
        owners,
        nbytes,
    )
