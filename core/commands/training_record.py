"""Write what a checkpoint was trained on into it, from its stored config's training data.

    python -m core.commands.training_record weights/ra_demo.pt [--note TEXT] [--out OUT]

Training runs record `trained_on` themselves (`core.run.experiment`); this is for
checkpoints written before they did (the shipped `weights/ra_demo.pt`). The checkpoint is opened as
`uad predict` opens it (`core.run.checkpoint_metadata.open_checkpoint`: its stored config checked, every
component this project's and of its role, the weights loaded into the model strictly), so the file it
writes is one every verb opens. Then the stored config's training data module is built (its split CSV
read, its first volume loaded as training loads it, so the data must be where the config says, e.g.
`python -m data.demo.prepare` for the demo) and `data.trained_on.TrainedOn` of it is written atomically;
every other entry is kept as is.
`--note` adds what the numbers cannot say (e.g. that two rows are one brain and its mirror image).
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

from core.config.configurator import run_seed
from core.run import checkpoint_metadata
from core.run.assembly import build_data_module
from data.trained_on import TrainedOn, from_data_module
from dl_utils.checkpoint import load_checkpoint, save_checkpoint
from dl_utils.errors import UserInputError


def record_trained_on(checkpoint: str | Path, out: str | Path | None = None, note: str = "",
                      allow_external_modules: bool = False) -> TrainedOn:
    """Compute `trained_on` from the checkpoint's stored config and write it to `out` (default: in place);
    classes outside this project's packages only with `allow_external_modules` (the caller's, never the file's)."""
    path = Path(checkpoint)
    state = load_checkpoint(path)
    # checked as `uad predict` checks it (stored config, every component, the weights fit the model): the file it
    # writes is one every verb opens; the record it replaces is not read
    config, builder, _ = checkpoint_metadata.open_checkpoint({k: v for k, v in state.items() if k != "trained_on"}, path,
                                                             allow_external_modules)
    if "trainer" not in config:
        raise UserInputError(f"{path}: its stored config has no trainer (data loader) to read the training data from")
    trained = replace(from_data_module(build_data_module(builder, config, run_seed(config))), note=note)
    state["trained_on"] = trained.to_plain()
    save_checkpoint(state, Path(out) if out else path)
    return trained


def main(argv: list[str] | None = None) -> int:
    from core.commands.exit_codes import run_and_report
    from core.commands.flags import add_external_modules_flag

    parser = argparse.ArgumentParser(description="Write trained_on into a checkpoint from its stored config's training data.")
    parser.add_argument("checkpoint", help="self-describing checkpoint (.pt)")
    parser.add_argument("--note", default="", help="what the numbers cannot say, printed with them by uad predict")
    parser.add_argument("--out", help="where to write (default: the checkpoint, atomically)")
    add_external_modules_flag(parser)
    args = parser.parse_args(argv)
    return run_and_report(lambda: f"{args.out or args.checkpoint}: trained on "
                          f"{record_trained_on(args.checkpoint, args.out, args.note, args.allow_external_modules).summary()}")


if __name__ == "__main__":
    sys.exit(main())
