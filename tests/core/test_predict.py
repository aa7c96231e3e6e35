"""`uad predict` and self-describing checkpoints.

- a training run writes its config into every checkpoint and the fitted thresholds into
  best_model.pt; a test-only config naming only the weights (no model) evaluates them;
- a scan scored by `predict` equals the same scan evaluated through the config (same maps,
  same AUPRC) -- the same code path;
- the shipped RA demo weights write maps and masks with exactly the input's shape and
  affine for an LPS, non-isotropic input.
"""
from __future__ import annotations

import csv
import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
import yaml

from core.commands.cli import main as uad
from core.Main import main
from dl_utils.errors import UserInputError
from optim.metrics import ranking
from tests.data.raw_scans import as_orientation, phantom
from tests.demo_like_data import write_demo_like
from tests.test_projects_end_to_end import shrink

ROOT = Path(__file__).resolve().parents[2]
AE = ROOT / "projects" / "AE" / "configs" / "ae.yaml"
TASK = "anomaly_detection"
TEST = "test_hyper_spheres"
SMALL = [  # one test set and the sets its thresholds need, a smaller network: seconds, not minutes
    f"downstream_tasks.{TASK}.params.roles.labelled_validation={{test_hyper_spheres: val_hyper_spheres}}",
    f"downstream_tasks.{TASK}.data_loader.datasets={{val_healthy: {{csv: splits/val_healthy.csv}}, "
    "test_healthy: {csv: splits/test_healthy.csv}, val_hyper_spheres: {csv: splits/val_hyper_spheres.csv}, "
    "test_hyper_spheres: {csv: splits/test_hyper_spheres.csv}}",
    "model.params.channels=[8, 16, 32, 32]", f"downstream_tasks.{TASK}.params.outputs={{figure_cases: 0}}",
]


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ra_run")
    data = write_demo_like(out / "data")
    overrides = shrink(AE, data, out) + [item for s in SMALL for item in ("--set", s)]
    assert main(["--config_path", str(AE), "--quiet", *overrides]) == 0
    (run,) = [p.parent.parent for p in out.rglob("checkpoints/best_model.pt")]
    return run


def test_every_checkpoint_carries_config_and_best_carries_thresholds(trained_run):
    for name in ("latest_model.pt", "best_model.pt"):
        state = torch.load(trained_run / "checkpoints" / name, map_location="cpu", weights_only=True)
        assert state["config"]["model"]["class_name"] == "ConvAutoencoder"
        assert state["config"]["trainer"]["params"]["nr_epochs"] == 1  # the merged config, after --set
    best = torch.load(trained_run / "checkpoints" / "best_model.pt", map_location="cpu", weights_only=True)
    results = json.loads((trained_run / "results.json").read_text())
    fitted = results[TASK]["test_hyper_spheres"]
    record = best["evaluation"][TASK]
    assert best["metadata_version"] == 2
    stored = record["thresholds"]["test_hyper_spheres"]["fpr_5%"]
    assert stored == fitted["thresholds"]["fpr_5%"]  # the same record in the checkpoint and in results.json
    assert stored["value"] == pytest.approx(fitted["threshold@fpr_5%"]) and stored["fitted_on"] == "val_healthy"
    assert stored["kind"] == "healthy_fpr" and stored["level"] == 0.05
    assert "oracle_dice" not in record["thresholds"]["test_hyper_spheres"]  # fitted on the test labels: never for predict
    assert record["input_grid"]["shape"] == [64, 64, 6] == fitted["input_grid"]["shape"]
    assert record["volumes"]["test_hyper_spheres"] == [r["name"] for r in csv.DictReader(
        (trained_run / TASK / "per_volume.csv").open()) if r["dataset"] == "test_hyper_spheres"]


def test_test_only_config_needs_no_model_section(trained_run, tmp_path, capsys):
    config = {"name": "ae_weights_only", "experiment": {"name": "w", "task": "test",
                                                         "weights": str(trained_run / "checkpoints" / "best_model.pt")},
              "output_root": str(tmp_path / "runs")}
    path = tmp_path / "weights_only.yaml"
    path.write_text(yaml.safe_dump(config))
    assert main(["--config_path", str(path), "--quiet"]) == 0
    (results,) = list((tmp_path / "runs").rglob("results.json"))
    ours = json.loads(results.read_text())[TASK]["test_hyper_spheres"]
    theirs = json.loads((trained_run / "results.json").read_text())[TASK]["test_hyper_spheres"]
    assert ours["AUPRC"] == pytest.approx(theirs["AUPRC"], abs=1e-6)


def test_predict_equals_evaluation_on_the_same_scans(trained_run, tmp_path, capsys):
    config = yaml.safe_load((trained_run / "config.yaml").read_text())
    data_root = Path(config["data_root"])
    split = data_root / "splits" / "test_hyper_spheres.csv"
    code = uad(["predict", "--model", str(trained_run), "--input", str(split), "--data-root", str(data_root),
                "--output", str(tmp_path / "pred"), "--threshold", "fpr_5%", "--no-png"])
    assert code == 0
    rows = list(csv.DictReader((tmp_path / "pred" / "predictions.csv").open()))
    assert [r["status"] for r in rows] == ["done", "done"]
    evaluated = json.loads((trained_run / "results.json").read_text())[TASK]["test_hyper_spheres"]
    assert float(rows[0]["threshold"]) == pytest.approx(evaluated["threshold@fpr_5%"], rel=1e-5)
    scores, labels = [], []
    for row in rows:
        ours = np.asarray(nib.load(row["map_path"]).dataobj)
        theirs = np.asarray(nib.load(trained_run / TASK / "anomaly_maps" / "test_hyper_spheres"
                                     / f"{row['scan']}_anomaly_map.nii.gz").dataobj)
        np.testing.assert_allclose(ours, theirs, atol=1e-6)
        seg = np.asarray(nib.load(data_root / "volumes" / f"{row['scan']}_seg.nii.gz").dataobj) > 0
        brain = np.asarray(nib.load(data_root / "volumes" / f"{row['scan']}_mask.nii.gz").dataobj) > 0
        scores.append(ours[brain]), labels.append(seg[brain])
    auprc = ranking.auprc(np.concatenate(scores), np.concatenate(labels))
    assert abs(auprc - evaluated["AUPRC"]) < 0.02


def test_shipped_weights_keep_shape_and_affine_of_an_lps_anisotropic_scan(tmp_path, capsys):
    image, brain, affine = phantom((60, 70, 40), 1.0)
    ras = affine @ np.diag([1.5, 1.2, 2.0, 1.0])  # non-isotropic voxels
    img = as_orientation(image, ras, ("L", "P", "S"))
    nib.save(img, tmp_path / "scan.nii.gz")
    img = nib.load(tmp_path / "scan.nii.gz")  # the affine as stored (float32 in the header)
    code = uad(["predict", "--model", str(ROOT / "weights" / "ra_demo.pt"), "--input", str(tmp_path / "scan.nii.gz"),
                "--output", str(tmp_path / "out"), "--skull-strip", "none",
                "--no-registration", "--threshold", "fpr_1%"])
    assert code == 0, capsys.readouterr()
    (row,) = list(csv.DictReader((tmp_path / "out" / "predictions.csv").open()))
    assert row["status"] == "done" and row["threshold_protocol"] == "fpr_1%" and float(row["sample_score"]) > 0
    for key in ("map_path", "mask_path"):
        out = nib.load(row[key])
        assert out.shape == img.shape
        np.testing.assert_array_equal(out.affine, img.affine)
    amap = np.asarray(nib.load(row["map_path"]).dataobj)
    assert amap.max() > 0 and (amap[np.asarray(img.dataobj) == 0] == 0).mean() > 0.9  # the map lives in the brain
    assert (tmp_path / "out" / "scan.png").stat().st_size > 1000


def test_predict_errors_are_one_line(tmp_path, capsys):
    assert uad(["predict", "--model", str(tmp_path / "nothing.pt"), "--input", "x", "--output", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no checkpoint there" in err[0]
    assert uad(["predict", "--model", str(ROOT / "weights" / "ra_demo.pt"), "--input", str(tmp_path),
                "--output", str(tmp_path / "o")]) == 2
    assert "no .nii / .nii.gz files" in capsys.readouterr().err  # inputs are read before the model is loaded
    (tmp_path / "scans").mkdir()
    nib.save(nib.Nifti1Image(np.zeros((8, 8, 8), np.float32), np.eye(4)), tmp_path / "scans" / "s.nii.gz")
    code = uad(["predict", "--model", str(ROOT / "weights" / "ra_demo.pt"), "--input", str(tmp_path / "scans"),
                "--output", str(tmp_path / "o"), "--threshold", "fpr_3%"])
    assert code == 2 and "fpr_3%" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_missing_or_unreadable_scans_are_refused_naming_the_csv_line_before_any_output(tmp_path, capsys):
    """Every file a scan names is there and readable before the model is loaded or --output exists: one line
    naming the CSV line (or subject) that named it and the file."""
    from core.commands.predict_inputs import read_scans
    from core.commands.scan_checks import check_scan_headers

    for name in ("a", "b"):
        nib.save(nib.Nifti1Image(np.ones((8, 8, 4), np.float32), np.eye(4)), tmp_path / f"{name}.nii.gz")
        nib.save(nib.Nifti1Image(np.ones((8, 8, 4), np.uint8), np.eye(4)), tmp_path / f"{name}_mask.nii.gz")
    (tmp_path / "scans.csv").write_text("img_name,age,label,img_path,mask_path,seg_path\n"
                                        "a,,0,a.nii.gz,a_mask.nii.gz,\nb,,0,b.nii.gz,b_mask.nii.gz,\n")
    (tmp_path / "subjects.csv").write_text("subject,t1,mask\ns1,a.nii.gz,\ns2,b.nii.gz,b_mask.nii.gz\n")
    for source in ("scans.csv", "subjects.csv"):
        check_scan_headers(s.files() for s in read_scans(tmp_path / source))  # all there
    (tmp_path / "b_mask.nii.gz").unlink()
    expected = {"scans.csv": f"{tmp_path / 'scans.csv'} line 3: brain mask {tmp_path / 'b_mask.nii.gz'}: no such file",
                "subjects.csv": f"{tmp_path / 'subjects.csv'} subject 's2': file {tmp_path / 'b_mask.nii.gz'}: no such file"}
    for source, message in expected.items():
        with pytest.raises(UserInputError) as caught:
            check_scan_headers(s.files() for s in read_scans(tmp_path / source))
        assert str(caught.value).startswith(message), str(caught.value)
    (tmp_path / "b.nii.gz").write_bytes(b"not a scan" * 100)
    with pytest.raises(UserInputError, match=rf"scans\.csv line 3: scan {tmp_path / 'b.nii.gz'}: not a readable NIfTI file"):
        check_scan_headers(s.files() for s in read_scans(tmp_path / "scans.csv"))
    with pytest.raises(UserInputError, match=rf"^brain mask {tmp_path / 'gone.nii.gz'}: no such file"):
        check_scan_headers(s.files() for s in read_scans(tmp_path / "a.nii.gz", preprocessed=True, mask=tmp_path / "gone.nii.gz"))
    (tmp_path / "a.nii.gz").unlink()
    assert uad(["predict", "--model", str(ROOT / "weights" / "ra_demo.pt"), "--input", str(tmp_path / "scans.csv"),
                "--output", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: {tmp_path / 'scans.csv'} line 2: scan {tmp_path / 'a.nii.gz'}: no such file; fix the path (a CSV's "
                   "paths are relative to its folder, or to --data-root for a volume-layout CSV)"]
    assert not (tmp_path / "out").exists()


def test_uad_test_with_a_checkpoint_alone(trained_run, tmp_path, capsys):
    assert uad(["test", "--model", str(trained_run), "--quiet", "--output_root", str(tmp_path / "runs")]) == 0
    (results,) = list((tmp_path / "runs").rglob("results.json"))
    ours = json.loads(results.read_text())[TASK]["test_hyper_spheres"]
    theirs = json.loads((trained_run / "results.json").read_text())[TASK]["test_hyper_spheres"]
    assert ours["AUPRC"] == pytest.approx(theirs["AUPRC"], abs=1e-6)


def test_predict_on_a_uad_preprocess_output_maps_back_to_the_raw_scans(tmp_path, capsys):
    image, _, affine = phantom((60, 70, 40), 1.0)
    raw = as_orientation(image, affine @ np.diag([1.2, 1.2, 1.5, 1.0]), ("P", "S", "L"))  # sagittal-first
    (tmp_path / "raw").mkdir()
    nib.save(raw, tmp_path / "raw" / "s1.nii.gz")
    fast = ["--skull-strip", "none", "--no-registration"]
    assert uad(["preprocess", "--input", str(tmp_path / "raw"), "--output", str(tmp_path / "pre"), "--no-qc", *fast]) == 0
    assert uad(["predict", "--model", str(ROOT / "weights" / "ra_demo.pt"), "--input", str(tmp_path / "pre"),
                "--output", str(tmp_path / "out"), "--no-png"]) == 0
    stored = nib.load(tmp_path / "raw" / "s1.nii.gz")
    out = nib.load(tmp_path / "out" / "s1_anomaly_map.nii.gz")
    assert out.shape == stored.shape and np.array_equal(out.affine, stored.affine)


def test_preprocessed_scan_with_a_mask_skips_preprocessing(tmp_path, capsys):
    image, brain, affine = phantom((64, 64, 32), 2.0)
    nib.save(nib.Nifti1Image(image, affine), tmp_path / "scan.nii.gz")
    nib.save(nib.Nifti1Image(brain.astype(np.uint8), affine), tmp_path / "mask.nii.gz")
    args = ["predict", "--model", str(ROOT / "weights" / "ra_demo.pt"), "--input", str(tmp_path / "scan.nii.gz"),
            "--output", str(tmp_path / "out"), "--no-png", "--preprocessed"]
    assert uad(args) == 2 and "--mask" in capsys.readouterr().err  # a preprocessed scan needs its brain mask
    assert uad(args + ["--mask", str(tmp_path / "mask.nii.gz"), "--threshold", "0.2"]) == 0
    (row,) = list(csv.DictReader((tmp_path / "out" / "predictions.csv").open()))
    assert row["threshold_protocol"] == "given" and float(row["threshold"]) == 0.2
    amap = np.asarray(nib.load(row["map_path"]).dataobj)
    assert amap.shape == image.shape and (amap[~brain] == 0).all()  # the model grid is the scan's grid


def test_describe_writes_the_runs_true_grid_and_thresholds_and_predict_uses_them(trained_run, tmp_path, capsys, monkeypatch):
    state = torch.load(trained_run / "checkpoints" / "best_model.pt", map_location="cpu", weights_only=True)
    bare = {"model_weights": state["model_weights"], "epoch": state["epoch"]}  # a checkpoint that describes nothing
    torch.save(bare, tmp_path / "bare.pt")
    assert uad(["describe", str(trained_run), "--weights", str(tmp_path / "bare.pt"), "--out", str(tmp_path / "described.pt")]) == 0
    described = torch.load(tmp_path / "described.pt", map_location="cpu", weights_only=True)
    results = json.loads((trained_run / "results.json").read_text())[TASK][TEST]
    record = described["evaluation"][TASK]
    assert record["input_grid"]["shape"] == [64, 64, 6]  # the evaluated grid (not the raw scans')
    assert record["input_grid"]["preprocessing"]["target_shape"] is None
    assert record["thresholds"][TEST] == {k: v for k, v in results["thresholds"].items() if k != "oracle_dice"}
    assert record == state["evaluation"][TASK]  # what the run itself stored

    # predict with the described file: the same maps as with the run's checkpoint, at the described threshold
    data_root = Path(yaml.safe_load((trained_run / "config.yaml").read_text())["data_root"])
    split = data_root / "splits" / f"{TEST}.csv"
    for name, model in (("run", trained_run), ("described", tmp_path / "described.pt")):
        assert uad(["predict", "--model", str(model), "--input", str(split), "--data-root", str(data_root),
                    "--output", str(tmp_path / name), "--threshold", "val_dice", "--no-png"]) == 0
    ours, theirs = (list(csv.DictReader((tmp_path / n / "predictions.csv").open())) for n in ("described", "run"))
    assert [r["threshold"] for r in ours] == [r["threshold"] for r in theirs]
    assert float(ours[0]["threshold"]) == pytest.approx(results["thresholds"]["val_dice"]["value"], rel=1e-5)
    for a, b in zip(ours, theirs):
        np.testing.assert_array_equal(np.asarray(nib.load(a["map_path"]).dataobj), np.asarray(nib.load(b["map_path"]).dataobj))
        np.testing.assert_array_equal(np.asarray(nib.load(a["mask_path"]).dataobj), np.asarray(nib.load(b["mask_path"]).dataobj))

    # a raw scan (a NIfTI of another size, not a CSV of the evaluated grid): the recorded input
    # shape is what predict brings it to, and the map comes back in the scan's own shape
    from core.evaluation.pipeline import ScoringPipeline

    scored_shapes = []
    score = ScoringPipeline.score
    monkeypatch.setattr(ScoringPipeline, "score", lambda self, volume, *key: scored_shapes.append(tuple(volume.image.shape))
                        or score(self, volume, *key))
    image, _, affine = phantom((60, 70, 40), 1.0)
    nib.save(nib.Nifti1Image(image, affine), tmp_path / "raw.nii.gz")
    other = {**described, "evaluation": {TASK: {**record, "input_grid": {**record["input_grid"], "shape": [64, 64, 9]}}}}
    torch.save(other, tmp_path / "described_depth9.pt")  # the same, had the run evaluated 9 slices per volume
    for model in ("described.pt", "described_depth9.pt"):
        assert uad(["predict", "--model", str(tmp_path / model), "--input", str(tmp_path / "raw.nii.gz"), "--output",
                    str(tmp_path / f"raw_{model}"), "--threshold", "val_dice", "--no-png", "--no-report",
                    "--skull-strip", "none", "--no-registration"]) == 0
        assert nib.load(tmp_path / f"raw_{model}" / "raw_anomaly_map.nii.gz").shape == image.shape
    assert scored_shapes == [(64, 64, 6), (64, 64, 9)]


RESIZED = [64, 64, 4]  # an evaluation grid the demo volumes (64 x 64 x 6 on disk) are resampled to


def test_describe_records_a_resized_evaluation_grid_and_predict_scores_on_it(trained_run, tmp_path, capsys, monkeypatch):
    """An evaluation whose preprocessing resamples the volumes (target_shape): describe records the
    evaluated grid and its preprocessing, not the files' shape, and predict brings a scan of the
    evaluated set, and a raw scan of another size, onto that grid: the evaluated set's maps to the digit."""
    from core.evaluation.pipeline import ScoringPipeline

    resize = f"preprocessing.target_shape=[{', '.join(map(str, RESIZED))}]"
    assert uad(["test", "--model", str(trained_run), "--quiet", "--output_root", str(tmp_path / "runs"), "--set", resize]) == 0
    (evaluated,) = [p.parent for p in (tmp_path / "runs").rglob("results.json")]
    state = torch.load(trained_run / "checkpoints" / "best_model.pt", map_location="cpu", weights_only=True)
    torch.save({"model_weights": state["model_weights"], "epoch": state["epoch"]}, tmp_path / "bare.pt")
    assert uad(["describe", str(evaluated), "--weights", str(tmp_path / "bare.pt"), "--out", str(tmp_path / "described.pt")]) == 0
    record = torch.load(tmp_path / "described.pt", map_location="cpu", weights_only=True)["evaluation"][TASK]
    assert record["input_grid"]["shape"] == RESIZED  # the evaluated grid, not the files' 64 x 64 x 6
    assert record["input_grid"]["preprocessing"]["target_shape"] == RESIZED
    results = json.loads((evaluated / "results.json").read_text())[TASK][TEST]
    assert record["thresholds"][TEST] == {k: v for k, v in results["thresholds"].items() if k != "oracle_dice"}

    scored: dict[str, np.ndarray] = {}
    score = ScoringPipeline.score

    def spy(self, volume, *key):
        out = score(self, volume, *key)
        scored[volume.name] = out.amap.copy()
        return out

    monkeypatch.setattr(ScoringPipeline, "score", spy)
    data_root = Path(yaml.safe_load((trained_run / "config.yaml").read_text())["data_root"])
    assert uad(["predict", "--model", str(tmp_path / "described.pt"), "--input", str(data_root / "splits" / f"{TEST}.csv"),
                "--data-root", str(data_root), "--output", str(tmp_path / "pred"), "--threshold", "val_dice", "--no-png",
                "--no-report"]) == 0
    rows = list(csv.DictReader((tmp_path / "pred" / "predictions.csv").open()))
    assert [r["status"] for r in rows] == ["done"] * len(rows) and set(scored) == {r["scan"] for r in rows}
    files = {r["img_name"]: r["img_path"] for r in csv.DictReader((data_root / "splits" / f"{TEST}.csv").open())}
    assert float(rows[0]["threshold"]) == pytest.approx(results["thresholds"]["val_dice"]["value"], rel=1e-5)
    for row in rows:
        ours = scored[row["scan"]]
        theirs = np.asarray(nib.load(evaluated / TASK / "anomaly_maps" / TEST / f"{row['scan']}_anomaly_map.nii.gz").dataobj)
        assert list(ours.shape) == RESIZED and theirs.shape == ours.shape
        np.testing.assert_allclose(ours, theirs, atol=1e-6)  # scored as the evaluation scored it
        raw = nib.load(data_root / files[row["scan"]]).shape
        assert nib.load(row["map_path"]).shape == raw and list(raw) != RESIZED  # written back in the scan's own grid

    image, _, affine = phantom((60, 70, 40), 1.0)  # a raw scan of another size goes onto the recorded grid too
    nib.save(nib.Nifti1Image(image, affine), tmp_path / "raw.nii.gz")
    assert uad(["predict", "--model", str(tmp_path / "described.pt"), "--input", str(tmp_path / "raw.nii.gz"), "--output",
                str(tmp_path / "raw_out"), "--threshold", "val_dice", "--no-png", "--no-report", "--skull-strip", "none",
                "--no-registration"]) == 0
    assert list(scored["raw"].shape) == RESIZED and nib.load(tmp_path / "raw_out" / "raw_anomaly_map.nii.gz").shape == image.shape


def test_describe_reads_a_run_folder_written_before_metadata_version_2(trained_run, tmp_path):
    """An older run folder: no threshold records or grid in results.json; both are read off its
    `threshold@` metrics and written maps."""
    import shutil

    old = tmp_path / "old_run"
    shutil.copytree(trained_run, old)
    results = json.loads((old / "results.json").read_text())
    for metrics in results[TASK].values():
        metrics.pop("thresholds", None), metrics.pop("input_grid", None)
    (old / "results.json").write_text(json.dumps(results))
    assert uad(["describe", str(old), "--out", str(tmp_path / "described.pt")]) == 0
    record = torch.load(tmp_path / "described.pt", map_location="cpu", weights_only=True)["evaluation"][TASK]
    assert record["input_grid"]["shape"] == [64, 64, 6]
    fitted = results[TASK][TEST]
    assert record["thresholds"][TEST]["fpr_5%"]["value"] == fitted["threshold@fpr_5%"]
    assert record["thresholds"][TEST]["val_dice"]["kind"] == "val_dice"


# `uad predict` with weights/ra_demo.pt (metadata version 1) on the LPS phantom above, recorded at
# commit 1085f0c (before metadata version 2 and the grouped evaluator): threshold value and
# mask voxels per rule, and the map's sum and sample score, which the rules share.
RECORDED_V1 = {"fpr_1%": (0.300994, 963), "fpr_5%": (0.235487, 2026), "val_dice": (0.224181, 2306)}
RECORDED_V1_MAP_SUM, RECORDED_V1_SCORE = 2855.8449056845566, 0.0826882


@pytest.mark.parametrize("rule", RECORDED_V1)
def test_a_version_1_checkpoint_predicts_as_before(rule, tmp_path):
    state = torch.load(ROOT / "weights" / "ra_demo.pt", map_location="cpu", weights_only=True)
    assert state.get("metadata_version", 1) == 1 and "evaluation" not in state  # still the version-1 file
    image, _, affine = phantom((60, 70, 40), 1.0)
    nib.save(as_orientation(image, affine @ np.diag([1.5, 1.2, 2.0, 1.0]), ("L", "P", "S")), tmp_path / "scan.nii.gz")
    assert uad(["predict", "--model", str(ROOT / "weights" / "ra_demo.pt"), "--input", str(tmp_path / "scan.nii.gz"),
                "--output", str(tmp_path / "out"), "--skull-strip", "none", "--no-registration", "--threshold", rule,
                "--no-png"]) == 0
    (row,) = list(csv.DictReader((tmp_path / "out" / "predictions.csv").open()))
    threshold, voxels = RECORDED_V1[rule]
    assert float(row["threshold"]) == pytest.approx(threshold, rel=1e-5)
    assert abs(int(row["lesion_voxels"]) - voxels) <= 2  # float noise of another CPU may move a voxel at the threshold
    assert float(row["sample_score"]) == pytest.approx(RECORDED_V1_SCORE, rel=1e-5)
    amap = np.asarray(nib.load(row["map_path"]).dataobj).astype(np.float64)
    assert amap.sum() == pytest.approx(RECORDED_V1_MAP_SUM, rel=1e-5)


def test_a_checkpoint_without_a_recorded_seed_predicts_with_the_seed_its_evaluator_got():
    """The evaluator's seed: the task's own params.seed, else the run's seed, else the one default."""
    from core.run.assembly import evaluation_seed
    from dl_utils.seeding import DEFAULT_SEED

    config = {"seed": 3, "downstream_tasks": {"own": {"params": {"seed": 9}}, "run": {"params": {}}}}
    assert evaluation_seed(config, "own") == 9 and evaluation_seed(config, "run") == 3
    assert evaluation_seed({"downstream_tasks": {"run": {}}}, "run") == DEFAULT_SEED


@pytest.mark.parametrize("version", [3, "2"])
def test_a_checkpoint_of_a_later_metadata_version_is_refused_in_one_line(version, tmp_path, capsys):
    state = torch.load(ROOT / "weights" / "ra_demo.pt", map_location="cpu", weights_only=True)
    state["metadata_version"] = version
    torch.save(state, tmp_path / "later.pt")
    assert uad(["test", "--model", str(tmp_path / "later.pt"), "--output_root", str(tmp_path / "runs")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"metadata_version {version!r} is not one this framework reads" in err
    assert not (tmp_path / "runs").exists()


def test_default_task_is_the_first_with_thresholds_even_when_an_earlier_one_is_available(monkeypatch):
    """weights/ra_demo.pt (version 1) lists RA's LPIPS task first; it was skipped there (no SqueezeNet weights),
    so it has no thresholds. With the LPIPS weights installed it is available, and the default task (the first
    with thresholds, as `--task`'s help says) is still the L1 task the checkpoint was evaluated with."""
    from core.commands.predictor import load_predictor
    from optim.scoring.ra_lpips import RAPerceptualScorer

    monkeypatch.setattr(RAPerceptualScorer, "check_available", lambda self: None)  # as if the SqueezeNet file were there
    predictor = load_predictor(ROOT / "weights" / "ra_demo.pt", device="cpu")
    assert predictor.task == "anomaly_detection_l1"
    label, value = predictor.threshold("fpr_5%")
    assert label.startswith("fpr_5%") and value > 0
