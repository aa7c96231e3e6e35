"""What a stopped command advises: resume a training run once it has a checkpoint, else run the command again;
an outer command's advice (a benchmark, `uad cv`) holds over its runs'; an exception carries the advice of
where it was raised (the block has ended by the time the exit-code path reads it)."""
from __future__ import annotations

import pytest

from dl_utils import recovery
from dl_utils.checkpoint import atomic_path
from dl_utils.errors import WriteFailed


def test_no_advice_outside_a_block_is_run_again():
    assert recovery.next_step() == recovery.RUN_AGAIN == "run the command again"


def test_a_training_run_resumes_once_its_checkpoint_exists(tmp_path):
    step = recovery.resume_or_run_again(tmp_path, tmp_path / "latest_model.pt")
    assert step() == f"run the command again (no epoch was saved yet: delete {tmp_path})"
    (tmp_path / "latest_model.pt").write_bytes(b"x")
    assert step() == f"resume with --resume {tmp_path} (the last complete checkpoint is intact)"


def test_the_outer_advice_holds_and_an_exception_carries_it(tmp_path):
    with pytest.raises(KeyboardInterrupt) as caught:
        with recovery.advise(recovery.run_again("the cv folder is incomplete")):
            with recovery.advise(recovery.resume_or_run_again(tmp_path, tmp_path)):
                assert recovery.next_step() == "run the command again (the cv folder is incomplete)"
                raise KeyboardInterrupt
    assert recovery.next_step() == recovery.RUN_AGAIN  # the blocks have ended
    assert recovery.next_step(caught.value) == "run the command again (the cv folder is incomplete)"


def test_a_failed_write_names_the_file_and_the_advice_of_its_block(tmp_path):
    with pytest.raises(WriteFailed) as caught, recovery.advise(recovery.run_again("x")):
        with atomic_path(tmp_path / "out.csv"):
            raise OSError(28, "No space left on device")
    assert str(caught.value) == (f"{tmp_path}/out.csv: cannot write (No space left on device); the disk is full; free space, "
                                 "then run the command again (x)")
    assert (caught.value.path, caught.value.reason) == (str(tmp_path / "out.csv"), "No space left on device")
    assert list(tmp_path.iterdir()) == []
