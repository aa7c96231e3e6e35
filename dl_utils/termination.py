"""SIGTERM (a scheduler's stop) as an exception that unwinds the run, even while DataLoader workers start and stop.

A scheduler signals the whole process group. The command lines (core/commands/exit_codes.py)
install `on_sigterm`, which raises `Terminated` in the main thread, so atomic writers drop their
partial files. Two places would lose or garble it: an exception raised inside a fork hook or a
finaliser (starting and stopping workers runs both) is printed and swallowed, and a worker ended
by the signal turns into the DataLoader's RuntimeError. So the trainer starts and stops its
workers inside `deferred()` (the signal is raised when it ends), checks `raise_if_terminated()`
at each step, and its workers ignore SIGTERM (`worker_ignores_sigterm`): the main process stops them.
"""
from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator
from typing import Any


class Terminated(KeyboardInterrupt):
    """SIGTERM (a scheduler's stop, `kill`): unwinds like Ctrl-C, so atomic writers drop their partial files."""


class _State:
    received = False  # a SIGTERM arrived since `reset`
    deferring = 0  # depth of `deferred()` blocks


def reset() -> None:
    """Forget an earlier SIGTERM (a command run again in the same process starts clean)."""
    _State.received = False


def on_sigterm(signum: int, frame: Any) -> None:
    """The SIGTERM handler: raise `Terminated`, or, inside `deferred()`, when that block ends."""
    _State.received = True
    if _State.deferring == 0:
        raise Terminated()


def raise_if_terminated() -> None:
    """Raise `Terminated` if a SIGTERM arrived: a safe point, for a raise that a finaliser swallowed."""
    if _State.received:
        raise Terminated()


@contextlib.contextmanager
def deferred() -> Iterator[None]:
    """Hold a SIGTERM while the block runs (fork hooks, finalisers, which would swallow the raise); raise it after.

    The signal is also blocked in this thread, so that a worker forked here starts with it blocked
    until `worker_ignores_sigterm` ignores it (torch's own worker handler would die of it)."""
    _State.deferring += 1
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM}) if hasattr(signal, "pthread_sigmask") else None
    try:
        yield
    finally:
        _State.deferring -= 1
        if mask is not None and signal.SIGTERM not in mask:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})
    if _State.deferring == 0:
        raise_if_terminated()


def worker_ignores_sigterm(worker_id: int) -> None:
    """A DataLoader worker's init: ignore SIGTERM (then unblock it, see `deferred`); the main process
    stops its workers as it unwinds."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})
