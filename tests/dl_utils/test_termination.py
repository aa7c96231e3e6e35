"""SIGTERM inside `deferred()` is raised when the block ends, never inside it (a fork hook or finaliser would swallow it)."""
from __future__ import annotations

import os
import signal

import pytest

from core.commands.exit_codes import sigterm_as_interrupt
from dl_utils.termination import Terminated, deferred, raise_if_terminated, worker_ignores_sigterm


def test_sigterm_inside_deferred_is_raised_when_the_block_ends():
    reached = False
    with sigterm_as_interrupt(), pytest.raises(Terminated):
        with deferred():
            os.kill(os.getpid(), signal.SIGTERM)
            for _ in range(1000):  # the handler runs between bytecodes: it must not raise here
                pass
            reached = True
    assert reached
    raise_if_terminated()  # the command's end forgot it: a later command starts clean


def test_sigterm_outside_deferred_raises_at_once():
    with sigterm_as_interrupt(), pytest.raises(Terminated):
        os.kill(os.getpid(), signal.SIGTERM)
        for _ in range(1000):
            pass


def test_a_worker_ignores_sigterm_and_unblocks_it():
    previous = signal.getsignal(signal.SIGTERM)
    try:
        with deferred():  # as when the DataLoader forks: blocked in the forking thread
            assert signal.SIGTERM in signal.pthread_sigmask(signal.SIG_BLOCK, set())
            worker_ignores_sigterm(0)
            assert signal.getsignal(signal.SIGTERM) == signal.SIG_IGN
            assert signal.SIGTERM not in signal.pthread_sigmask(signal.SIG_BLOCK, set())
    finally:
        signal.signal(signal.SIGTERM, previous)
