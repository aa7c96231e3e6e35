"""Command-line flags shared by `core/Main.py`, the `uad` verbs and cross-validation."""
from __future__ import annotations

import argparse


def add_external_modules_flag(parser: argparse.ArgumentParser) -> None:
    """The only way to let a config name classes outside this project's packages: the person running
    the command says so (a config, `base:`, run folder or checkpoint never can; see core.config.builder)."""
    parser.add_argument("--allow-external-modules", "--allow_external_modules", dest="allow_external_modules",
                        action="store_true", help="let module_name name classes outside this project's packages "
                                                  "(only for configs and checkpoints you trust: building a class runs its code)")
