"""What a model was trained on travels in its checkpoints, and `uad predict` states it and warns
when a scan differs (contrast, slice thickness, field of view): data/trained_on.py."""
from __future__ import annotations

import csv
import html
import json
from dataclasses import replace
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

from core.commands.cli import main as uad
from core.commands.predict_inputs import read_scans, read_transform, scan_header
from core.commands.training_record import main as record_main
from core.Main import main
from data.trained_on import TrainedOn
from dl_utils.errors import UserInputError
from tests.data.raw_scans import phantom
from tests.demo_like_data import write_demo_like
from tests.test_projects_end_to_end import shrink

ROOT = Path(__file__).resolve().parents[2]
AE = ROOT / "projects" / "AE" / "configs" / "ae.yaml"


def test_a_training_run_records_its_training_data_in_every_checkpoint(tmp_path, capsys):
    data = write_demo_like(tmp_path / "data")
    overrides = shrink(AE, data, tmp_path / "runs") + ["--set", "downstream_tasks={}", "--set", "model.params.channels=[8, 16, 32, 32]"]
    assert main(["--config_path", str(AE), "--quiet", *overrides]) == 0, capsys.readouterr().err
    expected = TrainedOn(f"{data}/splits/train_healthy.csv", 2, None, "t1", (64, 64, 6), (1.0, 1.0, 1.0))  # no subject column
    for name in ("best_model.pt", "latest_model.pt"):
        (path,) = (tmp_path / "runs").rglob(f"checkpoints/{name}")
        assert TrainedOn.from_plain(torch.load(path, weights_only=True)["trained_on"]) == expected
    # an older checkpoint without it gets the same record from its stored config (weights untouched)
    state = torch.load(path, weights_only=True)
    del state["trained_on"]
    torch.save(state, tmp_path / "old.pt")
    assert record_main([str(tmp_path / "old.pt"), "--note", "a test", "--out", str(tmp_path / "new.pt")]) == 0
    new = torch.load(tmp_path / "new.pt", weights_only=True)
    assert TrainedOn.from_plain(new["trained_on"]) == replace(expected, note="a test")
    assert all(torch.equal(new["model_weights"][k], v) for k, v in state["model_weights"].items())


def test_predict_states_what_the_shipped_weights_were_trained_on_and_warns_on_a_thick_post_contrast_scan(tmp_path, capsys):
    image, _, affine = phantom((60, 70, 14), 1.0)
    nib.save(nib.Nifti1Image(image, affine @ np.diag([1.0, 1.0, 6.5, 1.0])), tmp_path / "head_T1CE.nii.gz")
    code = uad(["predict", "--model", str(ROOT / "weights" / "ra_demo.pt"), "--input", str(tmp_path / "head_T1CE.nii.gz"),
                "--output", str(tmp_path / "out"), "--skull-strip", "none", "--no-registration", "--no-n4", "--no-png"])
    out = capsys.readouterr().out.splitlines()
    assert code == 0
    assert out[0].startswith(f"{ROOT / 'weights' / 'ra_demo.pt'}: trained on data/demo/splits/train_healthy.csv (2 volumes")
    assert "T1, grid 64 x 64 x 32" in out[0] and "demo weights" in out[0]
    (row,) = list(csv.DictReader((tmp_path / "out" / "predictions.csv").open()))
    assert row["status"] == "done"
    assert "warning: contrast: the scan looks T1 POST-CONTRAST" in row["message"]
    assert "warning: slice thickness: 6.5 mm along inferior-superior" in row["message"]
    assert row["message"] in out[1]  # the per-scan line shows them too
    assert "(2 volumes, 1 subject)" in out[0]  # one brain and its mirror image: the demo splits' subject column
    quoted = next(line for line in (ROOT / "README.md").read_text().splitlines() if line.startswith("weights/ra_demo.pt: trained on"))
    assert out[0].replace(f"{ROOT}/", "").startswith(quoted.removesuffix(" ...)")), "the README quotes this line"
    # the page shows them as well: what the weights were trained on, and each warning of the scan
    page = html.unescape((tmp_path / "out" / "report.html").read_text())
    assert "data/demo/splits/train_healthy.csv" in page and "demo weights" in page
    for warning in ("contrast: the scan looks T1 POST-CONTRAST", "slice thickness: 6.5 mm along inferior-superior",
                    "field of view: the scan covers 60 mm left-right"):
        assert warning in row["message"] and warning in page, warning


def test_predict_on_a_preprocess_folder_warns_from_the_raw_scans_header(tmp_path, capsys):
    """`uad preprocess` then `uad predict FOLDER`: the warnings come from the scan as acquired (transform.json's
    raw record), not from the resampled volume; the raw file's name and description still say the contrast."""
    image, _, affine = phantom((60, 70, 14), 1.0)
    raw = nib.Nifti1Image(image, affine @ np.diag([1.0, 1.0, 6.5, 1.0]))
    raw.header["descrip"] = b"T1 MPRAGE POST GD"
    (tmp_path / "raw").mkdir()
    nib.save(raw, tmp_path / "raw" / "sub01_scan.nii.gz")
    steps = ["--skull-strip", "none", "--no-registration", "--no-n4"]
    assert uad(["preprocess", "--input", str(tmp_path / "raw"), "--output", str(tmp_path / "prep"), *steps]) == 0
    (tmp_path / "raw" / "sub01_scan.nii.gz").rename(tmp_path / "moved.nii.gz")  # the record alone must do
    code = uad(["predict", "--model", str(ROOT / "weights" / "ra_demo.pt"), "--input", str(tmp_path / "prep"),
                "--output", str(tmp_path / "out"), "--no-png"])
    assert code == 0, capsys.readouterr().err
    (row,) = list(csv.DictReader((tmp_path / "out" / "predictions.csv").open()))
    assert "warning: contrast: the scan looks T1 POST-CONTRAST" in row["message"]
    assert "warning: slice thickness: 6.5 mm along inferior-superior" in row["message"]
    assert "warning: field of view: the scan covers 60 mm left-right" in row["message"]
    # the same scan as a row of the preprocess output's split CSV: the header as acquired, not the brain-cropped volume's
    (as_row,) = read_scans(tmp_path / "prep" / "splits" / "all.csv", data_root=tmp_path / "prep")
    (as_folder,) = read_scans(tmp_path / "prep")
    assert as_row.row is not None and scan_header(as_row).extent_mm == scan_header(as_folder).extent_mm == (60.0, 70.0, 91.0)


def test_a_damaged_transform_record_is_one_line_naming_it(tmp_path):
    good = {"raw": {"path": "x.nii.gz", "shape": [4, 4, 4], "affine": np.eye(4).tolist()}, "template_to_subject": np.eye(4).tolist()}
    (tmp_path / "transform.json").write_text(json.dumps(good))
    assert read_transform(tmp_path)["raw"]["shape"] == [4, 4, 4]
    for text in ("{", '{"raw": 5}', '{"raw": {"shape": [4, 4], "affine": [[1]]}, "template_to_subject": [[1]]}',
                 json.dumps({**good, "template_to_subject": [[float("nan")] * 4] * 4})):
        (tmp_path / "transform.json").write_text(text)
        with pytest.raises(UserInputError, match="transform.json"):
            read_transform(tmp_path)


def test_warnings_shared_by_several_scans_are_said_once_and_kept_per_scan(tmp_path, capsys, caplog):
    """Two scans differing alike from the training data: each warning is logged for the first and once more with
    the count of the others; the second's summary line points up; predictions.csv keeps every scan's own."""
    image, _, affine = phantom((60, 70, 14), 1.0)
    (tmp_path / "scans").mkdir()
    for name in ("a_T1CE", "b_T1CE"):
        nib.save(nib.Nifti1Image(image, affine @ np.diag([1.0, 1.0, 6.5, 1.0])), tmp_path / "scans" / f"{name}.nii.gz")
    code = uad(["predict", "--model", str(ROOT / "weights" / "ra_demo.pt"), "--input", str(tmp_path / "scans"),
                "--output", str(tmp_path / "out"), "--skull-strip", "none", "--no-registration", "--no-n4", "--no-png",
                "--no-report"])
    out = capsys.readouterr().out.splitlines()
    assert code == 0
    rows = list(csv.DictReader((tmp_path / "out" / "predictions.csv").open()))
    assert [r["scan"] for r in rows] == ["a_T1CE", "b_T1CE"] and rows[0]["message"] == rows[1]["message"]
    warnings = rows[0]["message"].removeprefix("warning: ").split("; warning: ")
    assert len(warnings) == 4  # contrast, slice thickness, field of view left-right and posterior-anterior
    logged = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    for warning in warnings:
        assert logged.count(f"a_T1CE: {warning}") == 1 and not any(m.startswith("b_T1CE:") for m in logged)
        assert f"the same for 1 more scan(s) (predictions.csv lists each scan's warnings): {warning}" in logged
    assert any(line.startswith("a_T1CE: done") and rows[0]["message"] in line for line in out)
    assert any(line.startswith("b_T1CE: done") and line.endswith("(warnings as above)") for line in out)
