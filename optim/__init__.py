"""Losses, anomaly scoring, post-processing and metrics: pure numerics, no I/O."""
