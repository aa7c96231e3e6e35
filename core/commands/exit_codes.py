"""Exit codes of both command lines (`core/Main.py` and `uad`): one place turns an outcome into a code."""
from __future__ import annotations

import contextlib
import errno
import signal
import sys
from collections.abc import Callable, Iterator
from typing import Any

from dl_utils import recovery, termination
from dl_utils.errors import MEMORY_FIX, UserInputError, is_out_of_memory, memory_detail
from dl_utils.termination import Terminated

DISK_ERRNOS = {errno.ENOSPC, errno.EROFS, errno.EDQUOT, errno.EIO}  # the disk failed mid-run: free space, resume or run again
TERMINATED_EXIT_CODE = 128 + signal.SIGTERM  # 143, as a shell reports a process ended by SIGTERM
INTERRUPTED_EXIT_CODE = 128 + signal.SIGINT  # 130, Ctrl-C


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Turn SIGTERM into `Terminated` while a command runs (main thread only; the old handler comes back).
    dl_utils/termination.py: how it survives DataLoader workers starting and stopping."""
    try:
        previous = signal.signal(signal.SIGTERM, termination.on_sigterm)
    except ValueError:  # not the main thread (e.g. a command run from a worker thread): leave signals alone
        yield
        return
    termination.reset()
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
        termination.reset()


def run_and_report(action: Callable[[], Any]) -> int:
    """Run a command's action and turn its outcome into an exit code: a path (or other value)
    is printed as the last line; bad input, a full or read-only disk and a non-finite loss
    are one `error:` line and exit 2; SIGTERM and Ctrl-C are one line and exit 143 / 130; an int
    is the action's own exit code. A stop part-way says what to do next (`dl_utils.recovery`): a
    training run resumes with --resume from its last complete checkpoint, any other command is run again."""
    try:
        with sigterm_as_interrupt():
            result = action()
    except UserInputError as exc:
        print("error: " + " ".join(str(exc).split()), file=sys.stderr)  # always one line
        return 2
    except OSError as exc:  # a disk that fills up or turns read-only mid-run, outside the atomic writers
        where = f"{exc.filename}: " if exc.filename else ""
        fix = (f"free space or fix permissions, then {recovery.next_step(exc)}"
               if exc.errno in DISK_ERRNOS else "fix the path (an existing file where a folder goes, a name too long, "
                                                "no permission) and run the command again")
        print(f"error: {where}{exc.strerror or exc}; {fix}", file=sys.stderr)
        return 2
    except (MemoryError, RuntimeError) as exc:  # a failed allocation anywhere (other errors keep their traceback)
        if not is_out_of_memory(exc):
            raise
        print(f"error: out of memory ({memory_detail(exc)}); {MEMORY_FIX}", file=sys.stderr)
        return 2
    except FloatingPointError as exc:
        print("error: " + " ".join(str(exc).split()), file=sys.stderr)
        return 2
    except Terminated as exc:
        print(f"terminated (SIGTERM); {recovery.next_step(exc)}", file=sys.stderr)
        return TERMINATED_EXIT_CODE
    except KeyboardInterrupt as exc:
        print(f"interrupted (Ctrl-C); {recovery.next_step(exc)}", file=sys.stderr)
        return INTERRUPTED_EXIT_CODE
    if isinstance(result, int) and not isinstance(result, bool):
        return result
    if result is not None:
        print(result)
    return 0
