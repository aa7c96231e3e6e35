"""`uad predict` with a checkpoint evaluated on 2D image lists (ra_paper.yaml's `ImageListSet`: PNG files
listed in CSVs, padded to square, To01, bilinear resize without antialias, non-lesion masks).

The evaluator records how it read the images in the checkpoint's input grid; predict reads a PNG file,
a folder of PNGs or the image-list CSV by that record, scores it as the evaluator did and writes the
evaluator's own map and mask (the map binarized as the evaluator binarizes), bit for bit, taken back onto
each PNG's own pixels (`ImageReading.to_source`). Inputs the checkpoint cannot read so are one
line, exit 2, nothing written.
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
from skimage import io as skio
from torch import nn

from core.commands.cli import main as uad
from core.config.builder import ComponentBuilder
from core.evaluation.evaluator import AnomalyDetectionEvaluator
from core.evaluation.pipeline import ScoringPipeline
from core.evaluation.result import EvaluationResult
from core.Main import main
from data.image_reading import ImageReading, SourceGrid
from data.interpolation import Interpolation

ROOT = Path(__file__).resolve().parents[2]
RA_PAPER = ROOT / "projects" / "RA" / "configs" / "ra_paper.yaml"
TASK = "anomaly_detection_l1"  # (the LPIPS task is skipped without its weights)
TEST_SET = "test_hyper_spheres"
SOURCE = SourceGrid((40, 52), np.eye(4))  # every PNG below: 40 x 52 pixels, a PNG's identity affine
SETS = {"train_healthy": 3, "val_healthy": 2, "test_healthy": 2, "val_hyper_spheres": 2, TEST_SET: 2}


def _write_pngs(root: Path) -> None:
    """Non-square 8-bit PNGs (padding matters), a bright box in the sphere sets, each set's image, box
    (`_ann`) and non-lesion (`_neg`) CSVs as RA's layout has them, and brain masks (`_brain`: the head)."""
    rng = np.random.default_rng(0)
    (root / "png").mkdir(parents=True)
    y, x = np.mgrid[:40, :52]
    head = ((y - 20) ** 2 / 300 + (x - 26) ** 2 / 500) < 1
    for name, count in SETS.items():
        files = {"": [], "_ann": [], "_neg": [], "_brain": []}
        for i in range(count):
            image = np.clip(120 + 60 * np.sin(x / 6.0) + 10 * rng.standard_normal(x.shape), 0, 255) * head
            box = np.zeros(x.shape, np.uint8)
            if "spheres" in name:
                box[15:22, 20:28] = 255
                image[box > 0] = 250
            for suffix, array in (("", image), ("_ann", box), ("_neg", 255 * (box == 0)), ("_brain", 255 * head)):
                path = f"png/{name}_{i}{suffix}.png"
                skio.imsave(root / path, array.astype(np.uint8), check_contrast=False)
                files[suffix].append(path)
        for suffix, paths in files.items():
            (root / f"{name}{suffix}.csv").write_text("filename\n" + "".join(f"{p}\n" for p in paths))


def _train(root: Path, masks: str = "neg", extra: tuple[str, ...] = ()) -> Path:
    """ra_paper.yaml trained two steps of a tiny RA on 32 x 32 and evaluated on one test set, its sphere
    sets with the `_{masks}` mask lists."""
    _write_pngs(root / "data")
    evaluation = "downstream_tasks.anomaly_detection"
    sets = [f"data_root={root / 'data'}", "device=cpu", f"output_root={root / 'runs'}", "trainer.params.nr_epochs=1",
            "trainer.params.max_steps_per_epoch=2", "trainer.data_loader.params.train_csv=train_healthy.csv",
            "trainer.data_loader.params.val_csv=val_healthy.csv", "trainer.data_loader.params.batch_size=2",
            "trainer.data_loader.params.drop_last=false", "trainer.data_loader.params.reading.target_size=[32, 32]",
            "model.params.image_size=32", "model.params.channels=[4, 8]", "model.params.latent_dim=4",
            "model.params.published_skip_convs=false",
            f"{evaluation}.params.roles.labelled_validation={{{TEST_SET}: val_hyper_spheres}}",
            f"{evaluation}.params.outputs={{figure_cases: 0}}",
            f"{evaluation}.data_loader.params.reading.target_size=[32, 32]",
            f"{evaluation}.data_loader.datasets={{val_healthy: {{csv: val_healthy.csv}}, test_healthy: {{csv: test_healthy.csv}}, "
            + ", ".join(f"{s}: {{csv: {s}.csv, label_dir: {s}_ann.csv, mask_dir: {s}_{masks}.csv}}" for s in ("val_hyper_spheres", TEST_SET))
            + "}", *extra]
    assert main(["--config_path", str(RA_PAPER), "--quiet", *[a for s in sets for a in ("--set", s)]]) == 0
    (best,) = (root / "runs").rglob("checkpoints/best_model.pt")
    return best.parent.parent


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    """The RA paper's protocol: non-lesion masks (`mask_kind: non_lesion`)."""
    return _train(tmp_path_factory.mktemp("image_list"))


@pytest.fixture(scope="module")
def brain_run(tmp_path_factory) -> Path:
    """Brain masks (`mask_kind: brain`, ImageListSet's default): maps are scored inside them."""
    return _train(tmp_path_factory.mktemp("image_list_brain"), "brain",
                  ("downstream_tasks.anomaly_detection.data_loader.params.mask_kind=brain",))


def _evaluated(run: Path) -> tuple[dict[str, dict[str, str]], float, ScoringPipeline]:
    """The test set's per-volume rows, the fpr_5% threshold the evaluator fitted, and its binarizing pipeline."""
    rows = {r["name"]: r for r in csv.DictReader((run / TASK / "per_volume.csv").open()) if r["dataset"] == TEST_SET}
    fitted = EvaluationResult.from_json(json.loads((run / "results.json").read_text())[TASK]).thresholds()[TEST_SET]
    config = yaml.safe_load((run / "config.yaml").read_text())
    spec = ComponentBuilder(run / "config.yaml").build_param(config["downstream_tasks"][TASK], f"downstream_tasks.{TASK}",
                                                               AnomalyDetectionEvaluator.SCORING_PARAM)
    return rows, fitted["fpr_5%"].value, ScoringPipeline(nn.Identity(), spec, torch.device("cpu"), 0)


def _check_against_evaluation(run: Path, out: Path, evaluated_name: dict[str, str],
                              brains: dict[str, Path] | None = None) -> None:
    """Each predicted map (named by the image's stem) equals the evaluator's for that image bit for bit, its
    mask the evaluator's map binarized at the evaluator's threshold inside the brain mask the evaluation read
    (`brains`, by predicted name; none: the whole image, as with non-lesion masks), its sample score the row's."""
    rows, threshold, pipeline = _evaluated(run)
    grid = torch.load(run / "checkpoints" / "best_model.pt", map_location="cpu", weights_only=True)["evaluation"][TASK]["input_grid"]
    reading = ImageReading(**grid["reading"])
    predicted = list(csv.DictReader((out / "predictions.csv").open()))
    assert [r["scan"] for r in predicted] == list(evaluated_name) and all(r["status"] == "done" for r in predicted)
    lesion = 0
    for row in predicted:
        name = evaluated_name[row["scan"]]
        assert Path(row["map_path"]) == out / f"{row['scan']}_anomaly_map.nii.gz" and ".png" not in row["scan"]
        ours_file = nib.load(row["map_path"])
        theirs_file = nib.load(run / TASK / "anomaly_maps" / TEST_SET / f"{name}_anomaly_map.nii.gz")
        theirs = np.asarray(theirs_file.dataobj)
        assert theirs.shape == (32, 32, 1)  # the evaluator's map: on the model's grid, placed on the PNG's pixels
        np.testing.assert_allclose(theirs_file.affine, reading.grid_affine(SOURCE))
        ours = np.asarray(ours_file.dataobj)  # predict's: on the PNG's own 40 x 52 pixels
        assert ours.shape == (40, 52, 1) and np.allclose(ours_file.affine, np.eye(4))
        np.testing.assert_array_equal(ours[..., 0], reading.to_source(theirs[..., 0], SOURCE, Interpolation.LINEAR))
        mask = np.asarray(nib.load(row["mask_path"]).dataobj) > 0
        brain = reading.binary(brains[row["scan"]])[..., None] if brains else np.ones(theirs.shape, bool)
        evaluated_mask = pipeline.binarize(theirs, brain, threshold)[..., 0].astype(np.float32)
        np.testing.assert_array_equal(mask[..., 0], reading.to_source(evaluated_mask, SOURCE, Interpolation.NEAREST) > 0.5)
        assert float(row["threshold"]) == pytest.approx(threshold, rel=1e-5)
        assert float(row["sample_score"]) == pytest.approx(float(rows[name]["sample_score"]), rel=1e-5)
        lesion += int(mask.sum())
    assert lesion > 0  # the masks compared are not all empty


def test_the_checkpoint_records_how_its_evaluation_read_the_images(run):
    grid = torch.load(run / "checkpoints" / "best_model.pt", map_location="cpu", weights_only=True)["evaluation"][TASK]["input_grid"]
    assert grid["shape"] == [32, 32, 1] and grid["mask_kind"] == "non_lesion" and grid["masks_given"] is True
    assert ImageReading(**grid["reading"]) == ImageReading([32, 32], square=True, intensity="to01", resize="bilinear",
                                                           antialias=False, labels="stretched")


def test_predict_on_the_image_list_gives_the_evaluators_maps_and_masks(run, tmp_path, capsys):
    data = Path(yaml.safe_load((run / "config.yaml").read_text())["data_root"])
    code = uad(["predict", "--model", str(run), "--input", str(data / f"{TEST_SET}.csv"), "--data-root", str(data),
                "--output", str(tmp_path / "pred"), "--threshold", "fpr_5%"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert f"trained on {data / 'train_healthy.csv'} (3 volumes), UNKNOWN, grid 32 x 32 x 1" in out  # not "0 volumes"
    names = [f"png__{TEST_SET}_{i}" for i in range(SETS[TEST_SET])]  # as the evaluator named them, less `.png`
    _check_against_evaluation(run, tmp_path / "pred", {n: f"{n}.png" for n in names})
    assert (tmp_path / "pred" / f"{names[0]}.png").is_file() and not list((tmp_path / "pred").glob("*.png.*"))


def _viewer_specs(page: Path) -> list[dict]:
    """The JSON data of every viewer of a report page."""
    text = page.read_text()
    return [json.loads(part.split(">", 1)[1].split("</script>")[0]) for part in text.split('<script type="application/json"')[1:]]


def test_the_reports_draw_each_image_as_one_picture(run, tmp_path):
    """The run's report.html and predict's draw every map as a 2D image (one picture, rows x columns as the
    file has them, no slider): the page knows it from the recorded reading (results.json's input grid;
    predict.json's `images_2d`), not from a depth of 1."""
    data = Path(yaml.safe_load((run / "config.yaml").read_text())["data_root"])
    assert uad(["predict", "--model", str(run), "--input", str(data / "png" / f"{TEST_SET}_0.png"),
                "--output", str(tmp_path / "pred"), "--threshold", "fpr_5%", "--no-png"]) == 0
    assert json.loads((tmp_path / "pred" / "predict.json").read_text())["settings"]["images_2d"] is True
    for page, shape in ((run / "report.html", [32, 32, 1]), (tmp_path / "pred" / "report.html", [40, 52, 1])):
        specs = _viewer_specs(page)  # the evaluator's maps on the model grid, predict's on the PNG's pixels
        assert specs and all(spec["image2d"] and spec["shape"] == shape for spec in specs), page
        assert 'type="range"' not in page.read_text(), page


def test_predict_on_one_png_gives_the_evaluators_map(run, tmp_path, capsys):
    data = Path(yaml.safe_load((run / "config.yaml").read_text())["data_root"])
    image = data / "png" / f"{TEST_SET}_1.png"
    code = uad(["predict", "--model", str(run), "--input", str(image), "--output", str(tmp_path / "one"),
                "--threshold", "fpr_5%", "--no-png", "--no-report"])
    assert code == 0, capsys.readouterr().err
    _check_against_evaluation(run, tmp_path / "one", {image.stem: f"png__{image.name}"})


def test_predict_with_the_evaluations_brain_masks_gives_its_maps_masks_and_scores(brain_run, tmp_path, caplog):
    """A checkpoint whose image lists gave brain masks: `--mask` takes the list its evaluation took (the CSV,
    or a folder in the images' order); without it one warning line says the whole image is scored."""
    data = Path(yaml.safe_load((brain_run / "config.yaml").read_text())["data_root"])
    grid = torch.load(brain_run / "checkpoints" / "best_model.pt", map_location="cpu", weights_only=True)["evaluation"][TASK]["input_grid"]
    assert grid["mask_kind"] == "brain" and grid["masks_given"] is True  # the warning below follows this record
    names = {f"png__{TEST_SET}_{i}": data / "png" / f"{TEST_SET}_{i}_brain.png" for i in range(SETS[TEST_SET])}
    common = ["--model", str(brain_run), "--input", str(data / f"{TEST_SET}.csv"), "--data-root", str(data),
              "--threshold", "fpr_5%", "--no-png", "--no-report"]
    assert uad(["predict", *common, "--mask", str(data / f"{TEST_SET}_brain.csv"), "--output", str(tmp_path / "csv")]) == 0
    _check_against_evaluation(brain_run, tmp_path / "csv", {n: f"{n}.png" for n in names}, names)
    assert "scored whole" not in caplog.text
    folder = tmp_path / "masks"  # the same masks as a folder, named so that name order is the images' order
    folder.mkdir()
    for i, path in enumerate(names.values()):
        (folder / f"m{i}.png").write_bytes(path.read_bytes())
    assert uad(["predict", *common, "--mask", str(folder), "--output", str(tmp_path / "folder")]) == 0
    _check_against_evaluation(brain_run, tmp_path / "folder", {n: f"{n}.png" for n in names}, names)
    caplog.clear()
    assert uad(["predict", *common, "--output", str(tmp_path / "none")]) == 0
    warned = [r for r in caplog.records if "scored whole" in r.getMessage()]
    assert len(warned) == 1 and "--mask MASKS.csv" in warned[0].getMessage()
    evaluated = _evaluated(brain_run)[0]
    whole = {r["scan"]: float(r["sample_score"]) for r in csv.DictReader((tmp_path / "none" / "predictions.csv").open())}
    assert any(abs(score - float(evaluated[f"{n}.png"]["sample_score"])) > 1e-4 for n, score in whole.items())  # masks matter


@pytest.mark.parametrize("inputs", ["nifti", "mask"])
def test_what_the_checkpoint_cannot_read_is_one_line(run, tmp_path, capsys, inputs):
    """A NIfTI scan for a checkpoint evaluated on 2D images; --mask where its masks marked non-lesion regions."""
    data = Path(yaml.safe_load((run / "config.yaml").read_text())["data_root"])
    if inputs == "nifti":
        nib.save(nib.Nifti1Image(np.ones((8, 8, 8), np.float32), np.eye(4)), tmp_path / "scan.nii.gz")
        extra, expected = ["--input", str(tmp_path / "scan.nii.gz")], "was evaluated on 2D images (32 x 32, padded to square"
    else:
        extra = ["--input", str(data / "png" / f"{TEST_SET}_0.png"), "--mask", str(data / "png" / f"{TEST_SET}_0_neg.png")]
        expected = "marked non-lesion regions (mask_kind non_lesion), so its evaluation scored every image whole; drop --mask"
    code = uad(["predict", "--model", str(run), *extra, "--output", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and expected in err[0], err
    assert not (tmp_path / "out").exists()


def test_2d_outputs_are_named_by_the_stem_unless_two_would_meet():
    from core.commands.predict_inputs import output_names

    assert output_names(["png__a.png", "b.PNG", "c.nii.gz"]) == ["png__a", "b", "c.nii.gz"]
    assert output_names(["x.png", "x.jpg", "y.tif"]) == ["x.png", "x.jpg", "y"]
    assert output_names(["x.png.png", "x.png", "x.jpg"]) == ["x.png.png", "x.png", "x.jpg"]  # a stem meets a whole name


def test_a_brain_mask_of_another_size_is_one_line(brain_run, tmp_path, capsys):
    """A mask whose pixel grid is not its image's (another image's mask, another export) would be resized onto
    the image and scored without a word: refused from the headers, before the model is loaded."""
    data = Path(yaml.safe_load((brain_run / "config.yaml").read_text())["data_root"])
    skio.imsave(tmp_path / "small_mask.png", np.full((30, 30), 255, np.uint8), check_contrast=False)
    code = uad(["predict", "--model", str(brain_run), "--input", str(data / "png" / f"{TEST_SET}_0.png"),
                "--mask", str(tmp_path / "small_mask.png"), "--output", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "30 x 30 pixels, but its image" in err[0] and "40 x 52" in err[0], err
    assert not (tmp_path / "out").exists()
