"""Command line: `python core/Main.py --config_path projects/<P>/configs/<name>.yaml [--set k.p=v ...]`.

Reads the project YAML, builds model, trainer and downstream evaluators by name,
trains and/or evaluates, writes everything to one run folder and prints its path last.
"""
from __future__ import annotations

import argparse
import contextlib
import signal
import sys
from collections.abc import Callable, Iterator
from typing import Any

from core.Run import run_experiment
from dl_utils.errors import UserInputError


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Train and evaluate a UAD project from its YAML config.")
    parser.add_argument("--config_path", "--config-path", required=True, help="project YAML, e.g. projects/AE/configs/ae.yaml")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY.PATH=VALUE",
                        help="override any config key (value typed by YAML rules); repeatable")
    parser.add_argument("--resume", metavar="RUN_FOLDER", help="continue training from RUN_FOLDER/checkpoints/latest_model.pt")
    parser.add_argument("--output_root", "--output-root", help="folder for run folders (overrides output_root)")
    parser.add_argument("--quiet", action="store_true", help="log warnings only")
    add_external_modules_flag(parser)
    return parser.parse_args(argv)


def add_external_modules_flag(parser: argparse.ArgumentParser) -> None:
    """The only way to let a config name classes outside this project's packages: the person running
    the command says so (a config, checkpoint or run folder never can)."""
    parser.add_argument("--allow-external-modules", "--allow_external_modules", dest="allow_external_modules",
                        action="store_true", help="let module_name name classes outside this project's packages "
                                                  "(only for configs and checkpoints you trust: building a class runs its code)")


class Terminated(KeyboardInterrupt):
    """SIGTERM (a scheduler's stop, `kill`): unwinds like Ctrl-C, so atomic writers drop their partial files."""


def _raise_terminated(signum: int, frame: Any) -> None:
    raise Terminated()


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Turn SIGTERM into `Terminated` while a command runs (main thread only; the old handler comes back)."""
    try:
        previous = signal.signal(signal.SIGTERM, _raise_terminated)
    except ValueError:  # not the main thread (e.g. a command run from a worker thread): leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


TERMINATED_EXIT_CODE = 128 + signal.SIGTERM  # 143, as a shell reports a process ended by SIGTERM


def run_and_report(action: Callable[[], Any]) -> int:
    """Run a command's action and turn its outcome into an exit code: a path (or other value)
    is printed as the last line; bad input, a full or read-only disk and a non-finite loss
    are one `error:` line and exit 2; SIGTERM and Ctrl-C are one line and exit 143 / 130
    (the last complete checkpoint is intact); an int is the action's own exit code."""
    try:
        with sigterm_as_interrupt():
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
    except Terminated:
        print("terminated (SIGTERM); the last complete checkpoint is intact (resume with --resume RUN_FOLDER)", file=sys.stderr)
        return TERMINATED_EXIT_CODE
    except KeyboardInterrupt:
        print("interrupted; the last complete checkpoint is intact (resume with --resume RUN_FOLDER)", file=sys.stderr)
        return 130
    if isinstance(result, int) and not isinstance(result, bool):
        return result
    if result is not None:
        print(result)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    return run_and_report(lambda: run_experiment(args.config_path, args.overrides, resume=args.resume,
                                                 output_root=args.output_root, quiet=args.quiet,
                                                 allow_external_modules=args.allow_external_modules))


if __name__ == "__main__":
    sys.exit(main())
