"""Shared test setup: CPU only, few threads, fixed seeds."""
import os

import pytest
import torch

os.environ.setdefault("WANDB_MODE", "disabled")


# test.sh runs the suite in 2 pytest-xdist workers (one per core): then each uses one thread, so the two do
# not oversubscribe the cores; alone (`pytest tests/...`) a test uses two
THREADS = 1 if os.environ.get("PYTEST_XDIST_WORKER") else 2


@pytest.fixture(autouse=True)
def _seed_and_threads():
    torch.manual_seed(0)
    torch.set_num_threads(THREADS)
    yield
