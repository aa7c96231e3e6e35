"""Same config and seed -> identical results.json; 2-process torchrun == 1 process (to float rounding)."""
from __future__ import annotations

import pytest

from tests.reliability.determinism import rerun, torchrun_available, torchrun_vs_one
from tests.reliability.project import make_training_project


def test_rerun_gives_identical_results_json(tmp_path):
    config = make_training_project(tmp_path, epochs=2)
    figures = rerun(config, tmp_path, separate_processes=False)  # the report also checks two separate processes
    assert figures["identical_bytes"], figures


@pytest.mark.skipif(not torchrun_available(), reason="torchrun not installed")
def test_two_process_torchrun_equals_one_process(tmp_path):
    config = make_training_project(tmp_path, epochs=2)
    figures = torchrun_vs_one(config, tmp_path, one_in_process=True)
    # the same global batch, gradients averaged over ranks: equal up to the order of float sums
    assert figures["largest_difference"] < 1e-6, figures
