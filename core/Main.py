"""Command line: `python core/Main.py --config_path projects/<P>/configs/<name>.yaml [--set k.p=v ...]`.

Reads the project YAML, builds model, trainer and downstream evaluators by name,
trains and/or evaluates, writes everything to one run folder and prints its path last.
"""
from __future__ import annotations

import argparse
import sys

from core.commands.exit_codes import run_and_report
from core.run.experiment import run_experiment


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Train and evaluate a UAD project from its YAML config.")
    parser.add_argument("--config_path", "--config-path", required=True, help="project YAML, e.g. projects/AE/configs/ae.yaml")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY.PATH=VALUE",
                        help="override any config key (value typed by YAML rules); repeatable")
    parser.add_argument("--resume", metavar="RUN_FOLDER", help="continue training from RUN_FOLDER/checkpoints/latest_model.pt")
    parser.add_argument("--output_root", "--output-root", help="folder for run folders (overrides output_root)")
    parser.add_argument("--quiet", action="store_true", help="log warnings only")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    return run_and_report(lambda: run_experiment(args.config_path, args.overrides, resume=args.resume,
                                                 output_root=args.output_root, quiet=args.quiet))


if __name__ == "__main__":
    sys.exit(main())
