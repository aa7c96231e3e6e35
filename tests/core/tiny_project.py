"""A tiny volume-layout data set and config written to a temporary folder, for CLI tests."""
from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import yaml

SHAPE = (16, 16, 8)


def write_volume(folder: Path, name: str, rng: np.random.Generator, lesion: bool) -> dict[str, str]:
    image = rng.uniform(0.2, 0.8, SHAPE).astype(np.float32)
    mask = np.zeros(SHAPE, np.uint8)
    mask[2:14, 2:14, 1:7] = 1
    image *= mask
    row = {"img_name": name, "age": "", "label": str(int(lesion)), "img_path": f"{name}.nii.gz",
           "mask_path": f"{name}_mask.nii.gz", "seg_path": ""}
    if lesion:
        seg = np.zeros(SHAPE, np.uint8)
        seg[6:10, 6:10, 3:5] = 1
        image[seg > 0] = 1.0
        nib.save(nib.Nifti1Image(seg, np.eye(4)), folder / f"{name}_seg.nii.gz")
        row["seg_path"] = f"{name}_seg.nii.gz"
    nib.save(nib.Nifti1Image(image, np.eye(4)), folder / f"{name}.nii.gz")
    nib.save(nib.Nifti1Image(mask, np.eye(4)), folder / f"{name}_mask.nii.gz")
    return row


def write_split(path: Path, rows: list[dict[str, str]]) -> None:
    header = "img_name,age,label,img_path,mask_path,seg_path"
    path.write_text("\n".join([header] + [",".join(r[c] for c in header.split(",")) for r in rows]) + "\n")


def make_tiny_project(root: Path) -> Path:
    """Write volumes, splits and a config; return the config path."""
    data = root / "data"
    data.mkdir(parents=True)
    rng = np.random.default_rng(0)
    splits = {
        "healthy": [write_volume(data, f"h{i}", rng, False) for i in range(2)],
        "val": [write_volume(data, f"v{i}", rng, True) for i in range(2)],
        "test": [write_volume(data, f"t{i}", rng, True) for i in range(2)],
    }
    for name, rows in splits.items():
        write_split(data / f"{name}.csv", rows)
    config = {
        "name": "tiny",
        "experiment": {"name": "tiny", "task": "test", "weights": None},
        "device": "cpu",
        "output_root": str(root / "runs"),
        "model": {"module_name": "model_zoo.identity", "class_name": "IdentityModel", "params": {}},
        "downstream_tasks": {"detection": {
            "module_name": "core.evaluation.evaluator", "class_name": "AnomalyDetectionEvaluator",
            "params": {
                "scorer": {"module_name": "optim.scoring.intensity", "class_name": "IntensityDensityScorer", "params": {}},
                "fit_set": "healthy", "healthy_validation": "healthy", "labelled_validation": "val",
                "map_postprocessing": [{"module_name": "optim.postprocessing", "class_name": "MedianFilter", "params": {"kernel_size": 3}}],
            },
            "data_loader": {
                "module_name": "data.volume_dataset", "class_name": "VolumeSet",
                "params": {"data_root": str(data), "preprocessing": {"crop_shape": None, "target_shape": None}},
                "datasets": {"healthy": {"csv": "healthy.csv"}, "val": {"csv": "val.csv"}, "test": {"csv": "test.csv"}},
            },
        }},
    }
    path = root / "tiny.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def make_tiny_benchmark(root: Path) -> Path:
    """The tiny data set scored by two methods (the intensity baseline and a tiny
    autoencoder trained one step, which reconstructs) under the benchmark's orchestrator; return its config path."""
    threshold = make_tiny_project(root)
    config = yaml.safe_load(threshold.read_text())
    config["name"] = "tiny_ae"
    config["model"] = {"module_name": "model_zoo.autoencoder", "class_name": "ConvAutoencoder",
                       "params": {"image_size": SHAPE[0], "channels": [4, 4], "latent_dim": 8, "norm_groups": 2}}
    config["experiment"]["task"] = "train"  # one tiny step: a checkpoint, and a model that reconstructs
    data = config["downstream_tasks"]["detection"]["data_loader"]["params"]["data_root"]
    config["trainer"] = {"module_name": "core.Trainer", "class_name": "Trainer", "params": {
        "nr_epochs": 1, "max_steps_per_epoch": 1, "optimizer": "adam",
        "loss": {"module_name": "optim.losses.reconstruction", "class_name": "ReconstructionLoss", "params": {"kind": "l2"}}},
        "data_loader": {"module_name": "data.volume_dataset", "class_name": "VolumeDataModule", "params": {
            "data_root": data, "train_csv": "healthy.csv", "val_csv": "healthy.csv", "batch_size": 2, "samples_per_epoch": 2,
            "preprocessing": {"crop_shape": None, "percentiles": None, "target_shape": None}}}}
    params = config["downstream_tasks"]["detection"]["params"]
    params["scorer"] = {"module_name": "optim.scoring.l1", "class_name": "L1Scorer", "params": {}}
    del params["fit_set"]
    autoencoder = root / "tiny_ae.yaml"
    autoencoder.write_text(yaml.safe_dump(config, sort_keys=False))
    benchmark = {"name": "tiny_benchmark", "output_root": str(root / "runs"), "orchestrator": {
        "module_name": "projects.benchmark.comparison", "class_name": "MethodComparison",
        "params": {"baseline": "Threshold", "methods": {"Threshold": {"config": str(threshold)},
                                                        "AE (one step)": {"config": str(autoencoder)}}}}}
    path = root / "tiny_benchmark.yaml"
    path.write_text(yaml.safe_dump(benchmark, sort_keys=False))
    return path
