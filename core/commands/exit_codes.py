"""Exit codes of both command lines (`core/Main.py` and `uad`): one place turns an outcome into a code."""
from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from dl_utils.errors import UserInputError


def run_and_report(action: Callable[[], Any]) -> int:
    """Run a command's action and turn its outcome into an exit code: a path (or other value)
    is printed as the last line; bad input, a full or read-only disk and a non-finite loss
    are one `error:` line and exit 2; an int is the action's own exit code."""
    try:
        result = action()
    except UserInputError as exc:
        print("error: " + " ".join(str(exc).split()), file=sys.stderr)  # always one line
        return 2
    except OSError as exc:  # a disk that fills up or turns read-only mid-run, outside the atomic writers
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"error: {where}{exc.strerror or exc}; free space or fix permissions, then resume with --resume RUN_FOLDER "
              "(the last complete checkpoint is intact)", file=sys.stderr)
        return 2
    except FloatingPointError as exc:
        print("error: " + " ".join(str(exc).split()), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; the last complete checkpoint is intact (resume with --resume RUN_FOLDER)", file=sys.stderr)
        return 130
    if isinstance(result, int) and not isinstance(result, bool):
        return result
    if result is not None:
        print(result)
    return 0
