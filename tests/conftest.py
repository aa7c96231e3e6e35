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


# The files that take minutes, longest first, run before all others: the two workers (`--dist loadfile`: a file
# stays in one) then end together, instead of one running the longest file alone at the end (collected last,
# as tests/test_*.py sort after tests/*/). Order within a file, and among the other files, is kept.
LONG_FILES = ("tests/test_projects_end_to_end.py", "tests/test_docs_examples.py", "tests/reliability/test_kill_resume.py",
              "tests/test_paper_configs_one_step.py", "tests/reliability/test_bad_input.py")


def pytest_collection_modifyitems(config, items):
    rank = {path: i for i, path in enumerate(LONG_FILES)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::")[0], len(rank)))
