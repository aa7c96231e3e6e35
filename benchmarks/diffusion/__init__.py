"""The parts of `python -m benchmarks.bench_diffusion` (the command line, in benchmarks/bench_diffusion.py):
`models` (the sizes, the paper models and the methods timed), `volumes` (the volume a checkpoint was
evaluated on), `cost` (per-volume reconstruction and training cost), `speed` (eager vs channels-last vs
compiled), `precision` (fp32 vs bf16 per method), `report` (the printed tables)."""
