"""Running compiled programs: engines, clusters, verification and metrics.

TensorFlow is imported lazily, only by the TF engine and the cluster code."""
