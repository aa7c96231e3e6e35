"""SIGTERM inside `deferred()` is raised when the block ends, never inside it (a fork hook or finaliser would swallow it)."""
from __future__ import annotations

import signal
import threading
import time

import pytest

from core.commands.exit_codes import sigterm_as_interrupt
from dl_utils import termination
from dl_utils.termination import Terminated, deferred, raise_if_terminated, worker_ignores_sigterm


def _sigterm_to_this_thread() -> None:
    """SIGTERM directed at this (the main) thread. A process-directed `os.kill` may be taken by another
    thread (torch's, a browser driver's) whose C handler trips asynchronously: the Python handler could
    then run after the `with` blocks below have ended and end the whole pytest session (seen in CI)."""
    signal.pthread_kill(threading.get_ident(), signal.SIGTERM)


def _until_delivered() -> None:
    """Wait for the SIGTERM sent to this thread: pending (blocked here) or handled."""
    deadline = time.monotonic() + 10
    while not termination._State.received and signal.SIGTERM not in signal.sigpending() and time.monotonic() < deadline:
        time.sleep(0.001)  # the handler runs between bytecodes: it must not raise inside `deferred`


def test_sigterm_inside_deferred_is_raised_when_the_block_ends():
    reached = False
    with sigterm_as_interrupt(), pytest.raises(Terminated):
        with deferred():
            _sigterm_to_this_thread()
            _until_delivered()
            reached = True
    assert reached
    raise_if_terminated()  # the command's end forgot it: a later command starts clean


def test_sigterm_outside_deferred_raises_at_once():
    with sigterm_as_interrupt(), pytest.raises(Terminated):
        _sigterm_to_this_thread()
        _until_delivered()


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
