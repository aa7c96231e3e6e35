"""A tiny training project (16 x 16 x 8 volumes, a 2-level autoencoder) in a temporary folder.

Shared by the reliability tests and `python -m tests.reliability.report`; one epoch takes
well under a second on one CPU core.
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import yaml

from tests.core.tiny_project import make_tiny_project


def make_training_project(root: Path, epochs: int = 2, **trainer_params: Any) -> Path:
    """The tiny volume data of tests/core plus a trainer; returns the config path (`<root>/tiny.yaml`)."""
    config_path = make_tiny_project(root)
    config = yaml.safe_load(config_path.read_text())
    data = str(root / "data")
    config["experiment"] = {"name": "tiny_train", "task": "train", "weights": None}
    config["seed"] = 7
    config["model"] = {"module_name": "model_zoo.autoencoder", "class_name": "ConvAutoencoder",
                       "params": {"in_channels": 1, "image_size": 16, "channels": [8, 16], "latent_dim": 8, "norm_groups": 4}}
    config["trainer"] = {
        "module_name": "core.training.trainer", "class_name": "Trainer",
        "params": {"nr_epochs": epochs, "patience": 10, "optimizer": "adam", "optimizer_params": {"lr": 1.0e-3},
                   "progress": False, "loss": {"module_name": "optim.losses.reconstruction", "class_name": "ReconstructionLoss",
                                               "params": {"kind": "l2"}}, **trainer_params},
        "data_loader": {"module_name": "data.volume_dataset", "class_name": "VolumeDataModule",
                        "params": {"data_root": data, "train_csv": "healthy.csv", "val_csv": "val.csv", "batch_size": 4,
                                   "samples_per_epoch": 8, "preprocessing": {"crop_shape": None, "percentiles": None, "target_shape": None},
                                   "augmentation": {"gamma": {"p": 0.5}, "bias_field": {"p": 0.0}, "blur": {"p": 0.0},
                                                    "ghosting": {"p": 0.0}, "noise": {"p": 0.5}, "affine": {"p": 0.0}}}},
    }
    evaluation = config["downstream_tasks"]["detection"]
    evaluation["params"]["scorer"] = {"module_name": "optim.scoring.l1", "class_name": "L1Scorer", "params": {}}
    evaluation["params"]["figure_cases"] = 1
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    return config_path


def snapshot(root: Path) -> dict[str, str]:
    """sha256 of every file under `root` (symlinks by target), to prove that nothing was written or overwritten."""
    out = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        if path.is_symlink():
            out[rel] = "-> " + str(path.readlink())
        elif path.is_file():
            out[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
        elif path.is_dir():
            out[rel] = "dir"
    return out
