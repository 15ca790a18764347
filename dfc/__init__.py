"""dfc: a declarative dataflow compiler for HPC.

A YAML program of tiled arrays, tasks, queues and loops is validated (``dfc.lang``),
built into a networkx IR, placed by a cost model and lowered to a TensorFlow 1 graph.
The Python API is :func:`load` (``dfc.load("specs/cg.yaml", N=512).run()``: dfc/api.py).
Importing dfc never imports TensorFlow, nor anything else until the API is used.
"""

__version__ = "0.1.0"

_API = ("load", "Program", "RunReport", "SpecError", "STRATEGIES", "ENGINES")


def __getattr__(name: str):
    if name in _API:
        from . import api

        return getattr(api, name)
    raise AttributeError(f"module 'dfc' has no attribute {name!r}")


def __dir__() -> list[str]:
    return [*globals(), *_API]
