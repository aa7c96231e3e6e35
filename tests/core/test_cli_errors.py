"""Bad input stops `core/Main.py` with one readable line, exit code 2, and writes nothing."""
from __future__ import annotations

import gzip
import json

import nibabel as nib
import numpy as np
import pytest

from core.Main import main
from tests.core.tiny_project import SHAPE, make_tiny_project


@pytest.fixture()
def tiny(tmp_path):
    return make_tiny_project(tmp_path)


def _run_error(capsys, config, *extra: str) -> str:
    code = main(["--config_path", str(config), "--quiet", *extra])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and err[0].startswith("error: "), err
    assert not (config.parent / "runs").exists(), "a failed run must not write a run folder"
    return err[0]


def test_good_tiny_config_writes_results(tiny, capsys):
    assert main(["--config_path", str(tiny), "--quiet"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    run_dir = tiny.parent / "runs" / "misc" / "tiny"
    assert out[-1].startswith(str(run_dir))
    results = json.loads((next(run_dir.iterdir()) / "results.json").read_text())
    assert 0.0 <= results["detection"]["test"]["AUPRC"] <= 1.0


def test_misspelt_key(tiny, capsys):
    line = _run_error(capsys, tiny, "--set", "downstream_tasks.detection.params.fit_sett=healthy")
    assert "tiny.yaml" in line and "fit_sett" in line and "did you mean 'roles.fit_set'" in line  # today's key
    line = _run_error(capsys, tiny, "--set", "downstream_tasks.detection.params.roles={fit_sett: healthy}")
    assert "detection.params.roles.fit_sett" in line and "did you mean 'fit_set'" in line


def test_missing_volume_file(tiny, capsys):
    (tiny.parent / "data" / "t0.nii.gz").unlink()
    assert "t0.nii.gz" in _run_error(capsys, tiny)


def test_corrupt_nifti(tiny, capsys):
    path = tiny.parent / "data" / "t1.nii.gz"
    path.write_bytes(gzip.compress(b"not a nifti at all"))
    line = _run_error(capsys, tiny)
    assert "t1.nii.gz" in line and "not a readable NIfTI" in line


def test_wrong_dimensionality(tiny, capsys):
    nib.save(nib.Nifti1Image(np.zeros((16, 16), np.float32), np.eye(4)), tiny.parent / "data" / "v0.nii.gz")
    assert "v0.nii.gz" in _run_error(capsys, tiny)


def test_shape_mismatch(tiny, capsys):
    nib.save(nib.Nifti1Image(np.ones((16, 16, 4), np.uint8), np.eye(4)), tiny.parent / "data" / "h1_mask.nii.gz")
    assert "h1" in _run_error(capsys, tiny)


def test_nan_voxels(tiny, capsys):
    image = np.full(SHAPE, np.nan, np.float32)
    nib.save(nib.Nifti1Image(image, np.eye(4)), tiny.parent / "data" / "h0.nii.gz")
    line = _run_error(capsys, tiny)
    assert "h0.nii.gz" in line and "NaN" in line


def test_empty_brain_mask(tiny, capsys):
    nib.save(nib.Nifti1Image(np.zeros(SHAPE, np.uint8), np.eye(4)), tiny.parent / "data" / "t0_mask.nii.gz")
    assert "t0_mask.nii.gz" in _run_error(capsys, tiny)


def test_empty_split(tiny, capsys):
    (tiny.parent / "data" / "test.csv").write_text("img_name,age,label,img_path,mask_path,seg_path\n")
    assert "test.csv" in _run_error(capsys, tiny)


def test_missing_config(tmp_path, capsys):
    code = main(["--config_path", str(tmp_path / "absent.yaml")])
    assert code == 2 and "absent.yaml" in capsys.readouterr().err


def test_weights_required_for_test_of_trainable_model(tiny, capsys):
    line = _run_error(capsys, tiny, "--set", "model.module_name=model_zoo.autoencoder",
                      "--set", "model.class_name=ConvAutoencoder", "--set", "model.params={image_size: 16, channels: [8, 16]}")
    assert "experiment.weights" in line


def test_a_config_extending_the_tiny_one_runs_and_its_errors_name_both_files(tiny, capsys, monkeypatch):
    monkeypatch.chdir(tiny.parent)  # base paths are relative to the working directory
    child = tiny.parent / "child.yaml"
    child.write_text(f"base: {tiny.name}\nname: child\ndownstream_tasks:\n  detection:\n    params: {{fit_sett: x}}\n")
    line = _run_error(capsys, child)
    assert f"child.yaml (or its base {tiny.name})" in line and "did you mean 'roles.fit_set'" in line
    child.write_text(f"base: {tiny.name}\nname: child\n")
    assert main(["--config_path", str(child), "--quiet"]) == 0
