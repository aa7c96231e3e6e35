"""Shared test setup: CPU only, few threads, fixed seeds."""
import os

# Set before torch loads OpenMP (read once, at load): an idle OpenMP thread sleeps instead of spinning. The suite
# runs two workers on two cores, and some tests run 2 threads or 2 processes; spinning threads took the other's
# core (a 2-thread and a 1-thread conv loop side by side: 125 + 182 it/s spinning, 253 + 267 it/s passive).
# Inherited by every process a test starts.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
# torch.compile's inductor compiles in this process instead of a pool of subprocesses that each import torch
# (a cold compile of the test UNet: 84 s of CPU instead of 102 s, the same wall time alone)
os.environ.setdefault("TORCHINDUCTOR_COMPILE_THREADS", "1")
os.environ.setdefault("WANDB_MODE", "disabled")

import pytest  # noqa: E402
import torch  # noqa: E402

# test.sh runs the suite in 2 pytest-xdist workers (one per core): then each uses one thread, so the two do
# not oversubscribe the cores; alone (`pytest tests/...`) a test uses two
THREADS = 1 if os.environ.get("PYTEST_XDIST_WORKER") else 2


@pytest.fixture(autouse=True)
def _seed_and_threads():
    torch.manual_seed(0)
    torch.set_num_threads(THREADS)
    yield

