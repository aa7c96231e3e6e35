"""report.html from a folder's files (core/run/report.py) and its pieces (dl_utils/report/): the
evaluation writes exactly what the page draws, the page shows the files' numbers (the
benchmark's p-values as computed, not recomputed), `uad report` rebuilds the same page."""
from __future__ import annotations

import base64
import csv
import json
import shutil
import zlib
from html.parser import HTMLParser
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

from core.commands.cli import main as uad
from core.run.report import REPORT_FILE, FolderKind, folder_kind, try_write_report, write_report
from data.volume_dataset import VolumeSet
from dl_utils.errors import UserInputError
from dl_utils.report import html
from dl_utils.report.charts import line_chart, visible_points
from dl_utils.report.volumes import Layer, LayerKind, Panel, display_window, focus, quantise, stride_for, thinning_note, viewer
from optim.postprocessing import MedianFilter
from optim.scoring.l1 import L1Scorer

TASK = "detection"


class Tables(HTMLParser):
    """The text of every table cell, per section id: {section: [[cell, ...] per row]}."""

    def __init__(self) -> None:
        super().__init__()
        self.sections: dict[str, list[list[str]]] = {}
        self.section, self.row, self.cell = None, None, None

    def handle_starttag(self, tag, attrs):
        if tag == "section":
            self.section = dict(attrs)["id"]
            self.sections[self.section] = []
        elif tag == "tr":
            self.row = []
        elif tag in ("td", "th"):
            self.cell = ""

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self.row is not None:
            self.row.append(self.cell)
            self.cell = None
        elif tag == "tr" and self.row is not None:
            self.sections[self.section].append(self.row)
            self.row = None

    def handle_data(self, data):
        if self.cell is not None:
            self.cell += data


def tables(page: Path) -> dict[str, list[list[str]]]:
    parser = Tables()
    parser.feed(page.read_text())
    return parser.sections


def _ae_run(folders) -> Path:
    return next(p for p in folders.runs.values() if (p / "checkpoints" / "best_model.pt").is_file())


# ---- what the evaluation writes for the report ------------------------------------------------
def test_evaluation_writes_the_input_reconstruction_and_labels_it_scored(report_folders):
    run = _ae_run(report_folders)
    config = __import__("yaml").safe_load((run / "config.yaml").read_text())
    loader = config["downstream_tasks"][TASK]["data_loader"]["params"]
    volumes = VolumeSet("test.csv", loader["data_root"], loader["preprocessing"])
    folder = run / TASK / "anomaly_maps" / "test"
    for volume in volumes:
        read = {k: np.asarray(nib.load(folder / f"{volume.name}_{k}.nii.gz").dataobj)
                for k in ("input", "reconstruction", "labels", "anomaly_map")}
        np.testing.assert_array_equal(read["input"], volume.image.numpy())
        np.testing.assert_array_equal(read["labels"] > 0, volume.seg.numpy())
        # the saved reconstruction is the one scored: L1 then the config's median filter give the saved map
        amap = L1Scorer()(volume.image, torch.from_numpy(read["reconstruction"])[None], volume.mask)
        amap = MedianFilter(kernel_size=3)(amap, volume.mask)
        np.testing.assert_allclose(np.asarray(amap), read["anomaly_map"], atol=1e-6)
    threshold_run = next(p for p in report_folders.runs.values() if p != run)  # a model-free scorer: no reconstruction
    assert not list((threshold_run / TASK / "anomaly_maps" / "test").glob("*_reconstruction.nii.gz"))
    assert len(list((threshold_run / TASK / "anomaly_maps" / "test").glob("*_input.nii.gz"))) == len(volumes)


def test_curve_points_are_the_pooled_curves_of_the_results(report_folders):
    for run in report_folders.runs.values():
        points = json.loads((run / TASK / "figures" / "test_roc_pr.json").read_text())
        results = json.loads((run / "results.json").read_text())[TASK]["test"]
        assert points["AUPRC"] == results["AUPRC_pooled_brain"] and points["AUROC"] == results["AUROC_pooled_brain"]
        fpr, tpr = np.array(points["roc"]["fpr"]), np.array(points["roc"]["tpr"])
        assert fpr[0] == tpr[0] == 0 and fpr[-1] == tpr[-1] == 1
        assert np.trapezoid(tpr, fpr) == pytest.approx(results["AUROC_pooled_brain"], abs=1e-9)  # every vertex (< 2000)


# ---- the pages -------------------------------------------------------------------------------
def test_run_page_shows_the_files_numbers(report_folders):
    run = _ae_run(report_folders)
    page = tables(run / REPORT_FILE)
    results = json.loads((run / "results.json").read_text())[TASK]["test"]
    header, row = page["results"][0], page["results"][1]
    for column in ("AUPRC", "AUROC", "Dice@val_dice"):
        assert row[header.index(column)] == html.fmt(results[column])
    if "Dice@oracle_dice" in results:  # labelled as results.md labels it
        assert row[header.index("Dice@oracle (upper bound)")] == html.fmt(results["Dice@oracle_dice"])
    with open(run / "per_volume.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(page["per-volume"]) == 1 + len(rows)
    assert [r[page["per-volume"][0].index("sample_score")] for r in page["per-volume"][1:]] == \
        [html.fmt(r["sample_score"]) for r in rows]


def _viewers(page: str) -> list[tuple[str, dict]]:
    """(viewer html, its data payload) of each drawn volume."""
    out = []
    for chunk in page.split('<div class="viewer" ')[1:]:
        data = chunk.split('type="application/json" id="', 1)[1].split('">', 1)[1].split("</script>", 1)[0]
        out.append((chunk.split("<script", 1)[0], json.loads(data)))
    return out


def test_run_page_draws_the_reconstruction_or_says_why_there_is_none(report_folders):
    """Each drawn volume of a reconstructing model (the AE) has a reconstruction panel in every plane, drawing the
    reconstruction the evaluation saved; a model-free method (Threshold) has, in its place, the note saying why."""
    ae = _ae_run(report_folders)
    threshold = next(p for p in report_folders.runs.values() if p != ae)
    ae_viewers = _viewers((ae / REPORT_FILE).read_text())
    assert len(ae_viewers) == 2
    for body, spec in ae_viewers:
        assert body.count("<figcaption>reconstruction</figcaption>") == 3  # axial, coronal, sagittal
        assert "model-free" not in body
        panel = next(i for i, p in enumerate(spec["panels"]) if p["layer"] == "reconstruction")
        assert spec["panels"][panel]["cmap"] == "gray" and set(spec["layers"]) >= {"input", "reconstruction", "map", "labels"}
        assert len(zlib.decompress(base64.b64decode(spec["layers"]["reconstruction"]))) == int(np.prod(spec["shape"]))
    threshold_viewers = _viewers((threshold / REPORT_FILE).read_text())
    assert len(threshold_viewers) == 2
    for body, spec in threshold_viewers:
        assert "<figcaption>reconstruction</figcaption>" not in body and "reconstruction" not in spec["layers"]
        assert body.count('<figure class="absent">reconstruction<br>none (model-free scorer)</figure>') == 3


def test_benchmark_page_shows_the_comparisons_p_values(report_folders):
    page = tables(report_folders.benchmark / REPORT_FILE)
    comparison = json.loads((report_folders.benchmark / "results.json").read_text())["orchestrator"]
    header, *rows = page["comparison"]
    assert len(rows) == len(comparison)
    for row, (key, values) in zip(rows, comparison.items()):
        assert f"{row[0]}: {row[1]}" == key
        for metric in ("AUPRC", "AUROC", "Dice@val_dice", "Dice@fpr_5%"):
            assert row[header.index(f"p vs Threshold ({metric})")] == html.fmt(values[f"{metric}_p_vs_baseline"], 2)
            assert row[header.index(f"{metric} (mean ± std)")].startswith(html.fmt(values[metric], 3) + " ± ")
    methods = [r[0] for r in page["methods"][1:]]
    assert methods == list(json.loads((report_folders.benchmark / "methods.json").read_text())["methods"])


def test_benchmark_page_shows_what_reused_weights_were_trained_on(report_folders, tmp_path):
    """A method that evaluates an earlier method's weights (the benchmark's SSIM and MHD: `reuse_weights_of`, a test-only
    run loading `experiment.weights`, no checkpoint of its own) shows that checkpoint's trained_on record, not a blank."""
    import yaml

    bench = tmp_path / "bench"
    shutil.copytree(report_folders.benchmark, bench)
    listing = json.loads((bench / "methods.json").read_text())
    source = next(name for name, rel in listing["methods"].items() if (bench / rel / "checkpoints" / "best_model.pt").is_file())
    reused = bench / "methods" / "reused" / "run"
    shutil.copytree(bench / listing["methods"][source], reused)
    shutil.rmtree(reused / "checkpoints")
    config = yaml.safe_load((reused / "config.yaml").read_text())
    weights = (bench / listing["methods"][source] / "checkpoints" / "best_model.pt").relative_to(tmp_path)  # as the orchestrator
    config["experiment"].update(task="test", weights=str(weights))  # names it: relative to where the benchmark ran
    (reused / "config.yaml").write_text(yaml.safe_dump(config))
    listing["methods"]["Reused"] = "methods/reused/run"
    (bench / "methods.json").write_text(json.dumps(listing))
    rows = {row[0]: row for row in tables(write_report(bench))["methods"]}
    column = rows["method"].index("trained on")
    assert rows["Reused"][column] == rows[source][column] and json.loads(rows[source][column])["dataset"]
    assert rows["Threshold"][column] == "-"  # no model, no record


def test_uad_report_rebuilds_the_same_page_from_the_files(report_folders, tmp_path, capsys):
    for index, folder in enumerate((*report_folders.runs.values(), report_folders.benchmark, report_folders.predict)):
        written = (folder / REPORT_FILE).read_text()
        copy = tmp_path / f"{index}_{folder.name}"
        shutil.copytree(folder, copy)
        (copy / REPORT_FILE).unlink()
        assert uad(["report", str(copy)]) == 0  # a predict folder too: its predict.json names the checkpoint
        assert capsys.readouterr().out.strip().splitlines()[-1] == str(copy / REPORT_FILE)
        rebuilt = (copy / REPORT_FILE).read_text()
        rebuilt = rebuilt.replace(str(copy.resolve()), "FOLDER").replace(str(folder.resolve()), "FOLDER")  # CSV paths too
        assert rebuilt == written.replace(str(folder.resolve()), "FOLDER")
        if folder == report_folders.predict:  # what the checkpoint was trained on, rebuilt from predict.json
            assert _definitions(rebuilt, "trained on") == _definitions(written, "trained on")
            assert _definitions(rebuilt, "trained on").startswith("<dl><dt>dataset</dt><dd>")


def _definitions(page: str, term: str) -> str:
    """The <dd> of `term` in the page's model section (one level of nested <dl> inside)."""
    start = page.index(f"<dt>{term}</dt><dd>") + len(f"<dt>{term}</dt><dd>")
    end = page.index("</dd>", page.index("</dl>", start) if page.startswith("<dl>", start) else start)
    return page[start:end]


def test_predict_records_the_checkpoint_that_made_its_folder(report_folders, tmp_path, caplog):
    """predict.json: the checkpoint's path and sha256, its trained_on record and the settings; a --model given
    to `uad report` is shown instead, with a warning when it is not the one that made the folder."""
    import hashlib

    checkpoint = _ae_run(report_folders) / "checkpoints" / "best_model.pt"
    record = json.loads((report_folders.predict / "predict.json").read_text())
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    assert record["model"] == str(checkpoint.resolve())
    assert record["sha256"] == hashlib.sha256(checkpoint.read_bytes()).hexdigest()
    assert record["trained_on"] == state["trained_on"] and record["task"] == TASK
    assert record["settings"]["threshold"] == "fpr_5%" and record["settings"]["precision"] in ("auto", "fp32")
    page = (report_folders.predict / REPORT_FILE).read_text()
    assert f"<dt>sha256</dt><dd>{record['sha256']}</dd>" in page and f"<dt>task</dt><dd>{TASK}</dd>" in page
    state["trained_on"] = {**state["trained_on"], "dataset": "another.csv"}
    torch.save(state, tmp_path / "other.pt")
    copy = tmp_path / "predict"
    shutil.copytree(report_folders.predict, copy)
    page = write_report(copy, checkpoint=tmp_path / "other.pt").read_text()
    assert "<dt>dataset</dt><dd>another.csv</dd>" in page and "is not the checkpoint that made" in caplog.text
    (copy / "predict.json").unlink()  # a folder written before predict recorded its checkpoint
    assert "unknown: no checkpoint named" in write_report(copy).read_text()


def test_volume_budget_and_bad_folders(report_folders, tmp_path, capsys, caplog):
    run = _ae_run(report_folders)
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    page = write_report(copy, max_megabytes=1e-6).read_text()
    assert 'class="viewer"' not in page and "2 more volume(s) not drawn" in page and "t0" in page
    assert folder_kind(copy) == FolderKind.RUN and folder_kind(report_folders.predict) == FolderKind.PREDICTION
    with pytest.raises(UserInputError, match="neither results.json"):
        write_report(tmp_path)
    assert uad(["report", str(tmp_path)]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
    (copy / "results.json").write_text("{not json")
    assert try_write_report(copy) is None and "uad report" in caplog.text  # a finished run is not failed by its page
    assert uad(["report", str(copy)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "results.json: not valid JSON at line 1" in err[0]


def test_predict_writes_the_report_unless_told_not_to(report_folders, tmp_path):
    rows = list(csv.DictReader((report_folders.predict / "predictions.csv").open()))
    for row in rows:
        for suffix in ("_input.nii.gz", "_reconstruction.nii.gz", "_anomaly_map.nii.gz"):
            assert nib.load(report_folders.predict / f"{row['scan']}{suffix}").shape == nib.load(row["map_path"]).shape
    model = _ae_run(report_folders)
    assert uad(["predict", "--model", str(model), "--input", str(report_folders.data / "test.csv"),
                "--output", str(tmp_path / "out"), "--no-png", "--no-report"]) == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir() if not p.name.endswith(("_map.nii.gz", "_mask.nii.gz"))) \
        == ["predict.json", "predictions.csv"]  # the record of what made the folder, with or without a page


def test_model_section_shows_what_the_checkpoint_was_trained_on(report_folders, tmp_path):
    state = torch.load(_ae_run(report_folders) / "checkpoints" / "best_model.pt", map_location="cpu", weights_only=True)
    state["trained_on"] = {"dataset": "demo", "subjects": 1, "contrast": "T1", "grid": [16, 16, 8]}
    torch.save(state, tmp_path / "described.pt")
    copy = tmp_path / "predict"
    shutil.copytree(report_folders.predict, copy)
    page = write_report(copy, checkpoint=tmp_path / "described.pt").read_text()
    assert "<dt>trained on</dt><dd><dl><dt>dataset</dt><dd>demo</dd><dt>subjects</dt><dd>1</dd>" in page
    # training runs record it themselves (data.trained_on), so the fixture's predict page shows it ...
    assert "<dt>trained on</dt><dd><dl><dt>dataset</dt>" in (report_folders.predict / REPORT_FILE).read_text()
    # ... and a checkpoint written before they did says so
    del state["trained_on"]
    torch.save(state, tmp_path / "older.pt")
    older = tmp_path / "predict_older"
    shutil.copytree(report_folders.predict, older)
    assert "not recorded in the checkpoint" in write_report(older, checkpoint=tmp_path / "older.pt").read_text()
    # a run that trained no model and loaded no weights (a model-free scorer) says so, not "no checkpoint named"
    model_free = tmp_path / "model_free_run"
    shutil.copytree(_ae_run(report_folders), model_free)
    shutil.rmtree(model_free / "checkpoints")
    text = _definitions(write_report(model_free).read_text(), "trained on")
    assert text.startswith("none: no checkpoints/best_model.pt in the run folder and no experiment.weights"), text


# ---- the pieces --------------------------------------------------------------------------------
def test_quantise_window_stride_and_focus_by_hand():
    assert quantise(np.array([-1.0, 0.0, 0.5, 1.0, 2.0]), (0.0, 1.0), LayerKind.INTENSITY).tolist() == [0, 0, 128, 255, 255]
    assert quantise(np.array([0.2, 0.7]), (0.0, 1.0), LayerKind.MASK).tolist() == [0, 1]
    assert display_window(np.linspace(0, 1, 11), LayerKind.INTENSITY) == (0.0, 1.0)
    ramp = np.concatenate([np.zeros(50), np.arange(1.0, 201.0)])  # positives 1..200: 99.5 % at 1 + 0.995 * 199
    assert display_window(ramp, LayerKind.MAP) == pytest.approx((0.0, 199.005))
    assert display_window(np.zeros(5), LayerKind.MAP) == (0.0, 1.0)
    assert display_window(np.arange(201.0), LayerKind.INTENSITY) == pytest.approx((1.0, 199.0))
    assert [stride_for(s, 128) for s in ((64, 64, 32), (128, 1, 1), (160, 192, 160), (385, 10, 10))] == [
        (1, 1, 1), (1, 1, 1), (2, 2, 2), (4, 1, 1)]
    mask = np.zeros((6, 7, 8))
    mask[1, 2:4, 5] = 1
    mask[4, 2, 5] = 1
    assert focus({"m": Layer(mask, LayerKind.MASK)}, mask.shape) == [1, 2, 5]
    amap = np.zeros((6, 7, 8))
    amap[3, 4, 1] = 2.0
    assert focus({"a": Layer(amap, LayerKind.MAP)}, amap.shape) == [3, 4, 1]
    assert focus({"a": Layer(np.zeros((6, 7, 8)), LayerKind.MAP)}, (6, 7, 8)) == [3, 3, 4]


def test_viewer_embeds_the_strided_quantised_layers():
    rng = np.random.default_rng(0)
    image = rng.uniform(0, 1, (9, 5, 4)).astype(np.float32)
    body, size = viewer("v-1", "a <b>", {"in": Layer(image, LayerKind.INTENSITY)}, [Panel("input", "in")],
                        spacing=(1.0, 1.0, 3.0), max_side=5)
    spec = json.loads(body.split('type="application/json" id="v-1-data">')[1].split("</script>")[0])
    strided = image[::2]  # only x is longer than 5: y and z keep every voxel
    assert spec["shape"] == list(strided.shape) and spec["spacing"] == [2.0, 1.0, 3.0] and size > 0
    assert "(every 2nd voxel along x)</h3>" in body
    decoded = np.frombuffer(zlib.decompress(base64.b64decode(spec["layers"]["in"])), np.uint8).reshape(strided.shape)
    np.testing.assert_array_equal(decoded, quantise(strided, (0.0, 1.0), LayerKind.INTENSITY))
    assert "a &lt;b&gt;" in body and "<b>" not in body  # titles are escaped
    with pytest.raises(ValueError, match="one 3D shape"):
        viewer("v", "t", {"a": Layer(image, LayerKind.MAP), "b": Layer(image[:2], LayerKind.MAP)}, [])
    with pytest.raises(ValueError, match="names layer 'x'"):
        viewer("v", "t", {"a": Layer(image, LayerKind.MAP)}, [Panel("p", "x")])


def test_charts_keep_visible_vertices_and_cells_format():
    x = np.array([0.0, 0.001, 0.002, 0.5, 0.5005, 1.0])
    y = np.array([0.0, 0.0, 0.5, 0.5, 0.5, 1.0])
    assert visible_points(x, y, 0.01).tolist() == [0, 2, 3, 5]
    svg = line_chart({"A": (x, y), "B <1>": (y, x)}, "ROC", "fpr", "tpr", diagonal=True)
    assert svg.count("<polyline") == 2 and "B &lt;1&gt;" in svg
    assert [html.fmt(v) for v in (0.123456, "", "nan", "12", float("nan"), "x", 3)] == ["0.1235", "-", "-", "12", "-", "x", "3"]
    cells = html.table(["a", "b"], [{"a": "n<1>", "b": "0.5"}])
    assert '<td data-v="0.5">0.5</td>' in cells and "n&lt;1&gt;" in cells
    # sort keys as JavaScript's Number() reads them: an infinite score sorts last, not as NaN
    cells = html.table(["s"], [{"s": "inf"}, {"s": float("-inf")}, {"s": 0.1}])
    assert 'data-v="Infinity"' in cells and 'data-v="-Infinity"' in cells and 'data-v="0.1"' in cells


def test_the_voxel_stride_is_named_with_its_ordinal():
    from dl_utils.report.volumes import _ordinal

    assert [_ordinal(n) for n in (1, 2, 3, 4, 11, 12, 13, 21, 22, 102, 111)] == [
        "1st", "2nd", "3rd", "4th", "11th", "12th", "13th", "21st", "22nd", "102nd", "111th"]
    assert [thinning_note(s) for s in ((1, 1, 1), (2, 1, 2), (2, 2, 2), (2, 3, 2), (1, 1, 4))] == [
        "", " (every 2nd voxel along x and z)", " (every 2nd voxel along x, y and z)",
        " (every 2nd voxel along x and z, every 3rd along y)", " (every 4th voxel along z)"]


def test_a_thick_slice_scan_keeps_every_slice_in_the_viewer():
    """A 200 x 33 x 232 scan of 1 x 1 x 7 mm voxels (the finding: one stride for all axes showed 17 of
    its 33 axial slices): x and y are thinned to fit 128, all 33 slices stay, each plane keeps its
    mm aspect, and the page's data stays within the max_side ** 3 voxel bound."""
    image = np.random.default_rng(1).uniform(0, 1, (200, 232, 33)).astype(np.float32)
    assert stride_for(image.shape, 128) == (2, 2, 1)
    body, size = viewer("v", "thick", {"in": Layer(image, LayerKind.INTENSITY)}, [Panel("input", "in")],
                        spacing=(1.0, 1.0, 7.0), max_side=128)
    spec = json.loads(body.split('type="application/json" id="v-data">')[1].split("</script>")[0])
    assert spec["shape"] == [100, 116, 33] and spec["spacing"] == [2.0, 2.0, 7.0]
    assert 'max="32"' in body  # the axial slider covers every slice
    assert "(every 2nd voxel along x and y)</h3>" in body
    assert size < 128 ** 3


def test_a_shared_benchmark_listing_cannot_link_to_another_scheme(tmp_path, capsys):
    """methods.json from someone else naming `javascript:...` as a run folder: the page links to a
    relative path inside the folder (`./javascript%3A...`), never to a `javascript:` URL."""
    from core.commands.cli import main as uad

    folder = tmp_path / "shared_bench"
    folder.mkdir()
    (folder / "results.json").write_text('{"orchestrator": {}}')
    (folder / "methods.json").write_text(json.dumps({"baseline": "m", "methods": {"m": "javascript:alert(1)//x"}}))
    assert uad(["report", str(folder)]) == 0, capsys.readouterr().err
    page = (folder / "report.html").read_text()
    assert 'href="javascript:' not in page and 'href="./javascript%3Aalert%281%29/x/report.html"' in page


def test_a_2d_image_is_one_picture_of_rows_and_columns():
    """A 2D image (rows, columns, 1) of an image list is drawn as its file has it: one plane of
    rows x columns, no slider; the JSON says so (the page's script reads row r of the array onto
    screen row r; the browser test reads the canvas back). A (X, Y, 1) volume keeps three planes."""
    image = np.zeros((6, 10, 1), np.float32)
    image[0, 9, 0] = 1.0  # the file's top-right pixel
    body, _ = viewer("v", "2d", {"in": Layer(image, LayerKind.INTENSITY)}, [Panel("input", "in")], image_2d=True)
    spec = json.loads(body.split('type="application/json" id="v-data">')[1].split("</script>")[0])
    assert spec["image2d"] is True and spec["shape"] == [6, 10, 1]
    assert body.count('class="plane"') == 1 and "input.slice" not in body and 'type="range"' not in body
    assert "2D image, 6 rows x 10 columns" in body
    decoded = np.frombuffer(zlib.decompress(base64.b64decode(spec["layers"]["in"])), np.uint8).reshape(6, 10, 1)
    assert decoded[0, 9, 0] == 255 and decoded.sum() == 255
    volume, _ = viewer("v", "1 slice", {"in": Layer(image, LayerKind.INTENSITY)}, [Panel("input", "in")])
    assert volume.count('class="plane"') == 3 and '"image2d": false' in volume
    with pytest.raises(ValueError, match="a 2D image is"):
        viewer("v", "t", {"in": Layer(np.zeros((4, 4, 2)), LayerKind.INTENSITY)}, [Panel("input", "in")], image_2d=True)
    assert thinning_note((2, 2, 1), image_2d=True) == " (every 2nd pixel along rows and columns)"


def test_the_page_knows_a_2d_set_from_its_recorded_reading():
    """results.json's input grid of an image-list set holds its reading settings: its sets (a healthy set
    without a grid too) are 2D; a volume set's grid (preprocessing, or none) is not, whatever its shape."""
    from core.run.report_volumes import images_2d

    image_list = {"test": {"input_grid": {"shape": [32, 32, 1], "preprocessing": None, "reading": {"target_size": [32, 32]}}},
                  "healthy": {"AUROC": 0.5}}
    volumes = {"test": {"input_grid": {"shape": [32, 32, 1], "preprocessing": None}}, "healthy": {}}
    assert images_2d(image_list, "test") and images_2d(image_list, "healthy")
    assert not images_2d(volumes, "test") and not images_2d(volumes, "healthy")


def test_case_figures_draw_a_2d_image_as_its_file_and_a_slice_anterior_up(monkeypatch, tmp_path):
    """plot_cases: a 2D image's top-right pixel (row 0, last column) is drawn top right; an axial RAS
    slice's right-anterior voxel (x, y highest) too (row 0 on top in both)."""
    from dl_utils import figures

    drawn = []
    monkeypatch.setattr(figures, "_save", lambda fig, path: drawn.append(fig))
    picture = np.zeros((6, 10), np.float32)
    picture[0, 9] = 1.0
    axial = np.zeros((10, 6), np.float32)
    axial[9, 5] = 1.0
    rows = [{"image": picture, "amap": picture, "reconstruction": None, "seg": None, "title": "a.png", "image_2d": True},
            {"image": axial, "amap": axial, "reconstruction": None, "seg": None, "title": "v z=0"}]
    figures.plot_cases(rows, tmp_path / "cases.png")
    for ax_row in np.asarray(drawn[0].axes).reshape(2, 4):
        for ax in (ax_row[0], ax_row[2]):
            shown = ax.images[0]
            array = np.asarray(shown.get_array())
            assert shown.origin == "upper" and array.shape == (6, 10) and array[0, 9] == 1.0 and array.sum() == 1.0
