"""Finite and non-empty ranges (dl_utils/param_types.py) and a failed allocation as one line (core/commands/exit_codes.py)."""
from __future__ import annotations

from typing import Annotated

from core.commands.exit_codes import run_and_report
from dl_utils.param_ranges import LearningRate, PositiveFloat, Widths
from dl_utils.param_types import MinItems, describe, mismatch


def test_finite_and_min_items_are_part_of_the_range():
    assert mismatch(float("inf"), PositiveFloat) == "expected a finite value (a number > 0), got inf (float)"
    assert mismatch(2.5, PositiveFloat) is None and mismatch(1e-4, LearningRate) is None
    assert mismatch(1e308, LearningRate) == "expected a number >= 0 and <= 10, got 1e+308 (float)"
    assert mismatch([], Widths) == "expected list of integers >= 1 and <= 16384 (at least 1), got [] (list)"
    assert mismatch([8, 16], Widths) is None
    assert describe(Annotated[list[int], MinItems(2)]) == "list of integers (at least 2)"


def test_a_failed_allocation_is_one_line_and_exit_2(capsys):
    def allocate():
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:117] data. DefaultCPUAllocator: can't allocate memory: "
                           "you tried to allocate 4000000000000 bytes.\nError code 12")

    assert run_and_report(allocate) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: out of memory (") and "crop_shape / target_shape" in err[0]

    def numpy_allocation():
        raise MemoryError("Unable to allocate 238. GiB for an array with shape (4000, 4000, 4000)")

    assert run_and_report(numpy_allocation) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


def test_other_runtime_errors_keep_their_traceback():
    import pytest

    with pytest.raises(RuntimeError, match="mat1 and mat2"):
        run_and_report(lambda: (_ for _ in ()).throw(RuntimeError("mat1 and mat2 shapes cannot be multiplied")))
