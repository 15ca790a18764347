"""dfc: a declarative dataflow compiler for HPC.

A YAML program of tiled arrays, tasks, queues and loops is validated (``dfc.lang``),
built into a networkx IR, placed by a cost model and lowered to a TensorFlow 1 graph.
Importing dfc never imports TensorFlow.
"""

__version__ = "0.1.0"
