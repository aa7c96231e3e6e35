"""The training-data record and the scan-vs-training warnings (data/trained_on.py)."""
from __future__ import annotations

import re
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from data.trained_on import ScanHeader, TrainedOn, from_data_module, scan_contrast, scan_warnings, stated
from data.volume_dataset import ContrastSelection, VolumeDataModule
from tests.demo_like_data import write_demo_like

TRAINED = TrainedOn("data/demo/splits/train_healthy.csv", 2, 1, "t1", (64, 64, 32), (3.0, 3.0, 3.0))


def test_record_of_a_volume_data_module(tmp_path):
    root = write_demo_like(tmp_path, shape=(32, 40, 6), per_split=2)
    module = VolumeDataModule(train_csv="splits/train_healthy.csv", val_csv="splits/val_healthy.csv", data_root=str(root),
                              preprocessing={"crop_shape": None, "percentiles": None, "target_shape": [16, 20, 6]})
    record = from_data_module(module)
    assert record.dataset == f"{root}/splits/train_healthy.csv"
    assert (record.volumes, record.subjects, record.contrast) == (2, None, "t1")  # no subject column: volumes only
    assert record.grid_shape == (16, 20, 6)  # after the data loader's preprocessing, as the model saw it
    assert record.spacing_mm == pytest.approx((2.0, 2.0, 1.0))  # 1 mm on disk, resampled 32 -> 16 and 40 -> 20
    assert TrainedOn.from_plain(record.to_plain()) == record


def test_the_recorded_contrast_is_the_one_read_not_a_mode_that_did_not_apply(tmp_path):
    """`mode: t2` on a split naming no `t1` scan (the demo under a paper config) reads it as given:
    the record then says what the scans say (here nothing: unknown), never T2; where it rewrote
    `t1` paths to T2 scans (the originals' data) the record says T2."""
    root = write_demo_like(tmp_path, shape=(32, 40, 6), per_split=2)
    preprocessing = {"crop_shape": None, "percentiles": None, "target_shape": [16, 20, 6]}
    as_given = VolumeDataModule(train_csv="splits/train_healthy.csv", val_csv="splits/val_healthy.csv", data_root=str(root),
                                preprocessing=preprocessing, contrast=ContrastSelection(mode="t2"))
    assert from_data_module(as_given).contrast == "unknown"
    csv = root / "splits" / "train_healthy.csv"
    lines = csv.read_text().splitlines()
    rows = [lines[0]]
    for line in lines[1:]:
        cells = line.split(",")
        image = root / cells[3]
        for contrast in ("t1", "t2"):
            (image.parent / contrast).mkdir(exist_ok=True)
            (image.parent / contrast / image.name.replace(".nii.gz", f"_{contrast}.nii.gz")).write_bytes(image.read_bytes())
        cells[3] = str(Path(cells[3]).parent / "t1" / image.name.replace(".nii.gz", "_t1.nii.gz"))
        rows.append(",".join(cells))
    csv.write_text("\n".join(rows) + "\n")
    rewritten = VolumeDataModule(train_csv="splits/train_healthy.csv", val_csv="splits/val_healthy.csv", data_root=str(root),
                                 preprocessing=preprocessing, contrast=ContrastSelection(mode="t2"))
    assert from_data_module(rewritten).contrast == "t2"


def test_subjects_are_counted_from_a_subject_column_only(tmp_path):
    """The demo's two training volumes are one brain and its mirror: distinct img_name is not a subject count."""
    root = write_demo_like(tmp_path, shape=(32, 40, 6), per_split=2)
    csv = root / "splits" / "train_healthy.csv"
    lines = csv.read_text().splitlines()
    csv.write_text("\n".join([lines[0] + ",Subject_ID"] + [line + ",brain-1" for line in lines[1:]]) + "\n")
    module = VolumeDataModule(train_csv="splits/train_healthy.csv", val_csv="splits/val_healthy.csv", data_root=str(root),
                              preprocessing={"crop_shape": None, "percentiles": None, "target_shape": [16, 20, 6]})
    record = from_data_module(module)
    assert (record.volumes, record.subjects, record.subject_column) == (2, 1, "Subject_ID")
    assert "(2 volumes, 1 subject)" in record.summary()
    assert TrainedOn.from_plain(record.to_plain()) == record


def test_an_older_record_that_counted_img_names_states_volumes_only():
    older = {"dataset": "data/demo/splits/train_healthy.csv", "volumes": 2, "subjects": 2, "contrast": "t1",
             "grid_shape": [64, 64, 32], "spacing_mm": [2.95, 2.95, 2.95], "note": "demo weights"}
    record = TrainedOn.from_plain(older)
    assert record.subjects is None
    assert record.summary() == ("data/demo/splits/train_healthy.csv (2 volumes), T1, grid 64 x 64 x 32 at "
                                "2.95 x 2.95 x 2.95 mm (demo weights)")
    assert stated(older) == {"dataset": "data/demo/splits/train_healthy.csv", "volumes": 2, "contrast": "t1",
                             "grid_shape": [64, 64, 32], "spacing_mm": [2.95, 2.95, 2.95], "note": "demo weights"}
    assert stated({"dataset": "demo", "grid": [1]}) == {"dataset": "demo", "grid": [1]}  # not a record: as stored


def test_summary_states_data_set_counts_contrast_grid_and_note():
    line = TrainedOn("d/train.csv", 3, 1, "t1", (64, 64, 32), (2.0, 2.0, 2.5), note="a demo").summary()
    assert line == "d/train.csv (3 volumes, 1 subject), T1, grid 64 x 64 x 32 at 2 x 2 x 2.5 mm (a demo)"


def test_header_spacing_and_extent_per_ras_axis_of_an_lps_anisotropic_scan():
    # voxel axes: 0 -> -x (L), 1 -> -z (S inverted, 6.5 mm), 2 -> -y (P): a coronal-stored, thick-sliced scan
    affine = np.array([[-1.0, 0, 0, 0], [0, 0, -0.9, 0], [0, -6.5, 0, 0], [0, 0, 0, 1]])
    header = ScanHeader.from_affine("scan", "", (180, 20, 200), affine)
    assert header.spacing_mm == pytest.approx((1.0, 0.9, 6.5))
    assert header.extent_mm == pytest.approx((180.0, 180.0, 130.0))


def test_header_read_from_a_file(tmp_path):
    img = nib.Nifti1Image(np.zeros((10, 12, 5), np.float32), np.diag([1.0, 1.0, 5.0, 1.0]))
    img.header["descrip"] = b"T2 FLAIR axial"
    nib.save(img, tmp_path / "sub-01.nii.gz")
    header = ScanHeader.read(tmp_path / "sub-01.nii.gz")
    assert (header.name, header.description) == ("sub-01.nii.gz", "T2 FLAIR axial")
    assert header.spacing_mm == pytest.approx((1.0, 1.0, 5.0)) and header.extent_mm == pytest.approx((10.0, 12.0, 25.0))


@pytest.mark.parametrize("texts,contrast", [
    (("sub-01_T1w.nii.gz",), "t1"), (("BraTS_001_t1ce.nii.gz",), "t1 post-contrast"), (("x_t1_gd.nii",), "t1 post-contrast"),
    (("case", "T2 FLAIR axial"), "flair"), (("IXI002-Guys-0828-T2.nii.gz",), "t2"), (("IXI002-Guys-0828-PD.nii.gz",), "pd"),
    (("T_template0.nii.gz", ""), None), (("scan.nii.gz", "MPRAGE sag"), "t1"),
    # post-contrast spellings of real scans (each once read as plain T1)
    (("T1_MPRAGE_POST.nii.gz",), "t1 post-contrast"), (("t1+c.nii.gz",), "t1 post-contrast"),
    (("T1w_postcon.nii.gz",), "t1 post-contrast"), (("sub-01_ce-gadolinium_T1w.nii.gz",), "t1 post-contrast"),
    (("head.nii", "T1 +Gd axial"), "t1 post-contrast"), (("T1_pre_contrast.nii.gz",), "t1"), (("flair_pre.nii",), "flair"),
    # negations of a contrast agent (each once read as post-contrast) and more post-contrast notations (each once plain T1)
    (("s.nii", "T1 MPRAGE WITHOUT CONTRAST"), "t1"), (("s.nii", "AX T1 NON CONTRAST"), "t1"), (("s.nii", "T1 W/O GAD"), "t1"),
    (("s.nii", "T1 Ax non-contrast"), "t1"), (("s.nii", "T1 without IV contrast"), "t1"), (("T1_noncontrast.nii",), "t1"),
    (("s.nii", "T1 ohne KM"), "t1"), (("s.nii", "AX T2 no contrast"), "t2"),
    (("s.nii", "T1 C+"), "t1 post-contrast"), (("s.nii", "ax t1 + c"), "t1 post-contrast"), (("T1-KM.nii.gz",), "t1 post-contrast"),
    (("s.nii", "T1 W/ GAD"), "t1 post-contrast"), (("s.nii", "Gd+ T1"), "t1 post-contrast"), (("T1+KM.nii",), "t1 post-contrast"),
    (("s.nii", "T1 W/O AND W/ CONTRAST"), "t1 post-contrast"), (("s.nii", "T1 non fat sat post gad"), "t1 post-contrast"),
    (("s.nii", "T2 + FLAIR"), "flair"),
    # other contrasts
    (("T2star.nii.gz",), "t2* / swi"), (("SWI_mag.nii.gz",), "t2* / swi"), (("DWI_b1000.nii.gz",), "dwi"),
    (("b1000.nii.gz",), "dwi"), (("sub-01_T2w.nii.gz",), "t2"),
    # fastMRI brain's acquisition names (RA's 2D slices): plane and contrast run together
    (("file_brain_AXT2_200_2000019.png",), "t2"), (("file_brain_AXT1POST_201_6002.png",), "t1 post-contrast"),
    (("file_brain_AXT1PRE_203_6000.png",), "t1"), (("file_brain_AXFLAIR_200_6002.png",), "flair"),
    (("file_brain_AXT1_202_2020.png",), "t1"), (("relax_max.png",), None),
])
def test_contrast_named_by_file_name_or_description(texts, contrast):
    assert scan_contrast(*texts) == contrast


def test_a_scan_naming_no_contrast_gets_contrast_unknown_when_the_training_contrast_is_known():
    scan = ScanHeader("T_template0.nii.gz", "", (1.0, 1.0, 1.2), (180.0, 220.0, 180.0))
    (warning,) = scan_warnings(TRAINED, scan)
    assert warning.startswith("contrast unknown: neither the scan's name nor its description names one") and \
        "the model was trained on T1" in warning
    assert scan_warnings(TrainedOn("x.csv", 1, 1, "unknown", None, None), scan) == []  # nothing known to compare
    named = ScanHeader("T1_MPRAGE_POST.nii.gz", "", (1.0, 1.0, 1.2), (180.0, 220.0, 180.0))
    assert scan_warnings(TRAINED, named)[0].startswith("contrast: the scan looks T1 POST-CONTRAST")
    assert scan_warnings(TrainedOn("x.csv", 1, 1, "T1", None, None), ScanHeader("sub_T1w.nii", "", (1.0,) * 3, (9.0,) * 3)) == []


def test_a_scan_like_the_training_data_gets_no_warning():
    scan = ScanHeader("sub_T1w.nii.gz", "", (1.0, 1.0, 1.2), (180.0, 220.0, 180.0))
    assert scan_warnings(TRAINED, scan) == []


def test_warnings_name_contrast_slice_thickness_and_field_of_view():
    scan = ScanHeader("head_t1ce.nii.gz", "", (0.45, 0.45, 6.5), (230.0, 230.0, 78.0))
    warnings = scan_warnings(TRAINED, scan)
    assert len(warnings) == 3
    assert warnings[0].startswith("contrast: the scan looks T1 POST-CONTRAST") and "trained on T1" in warnings[0]
    assert warnings[1].startswith("slice thickness: 6.5 mm along inferior-superior") and "3 mm voxels" in warnings[1]
    assert warnings[2].startswith("field of view: the scan covers 78 mm inferior-superior, the training volumes 96 mm")


def test_thresholds_of_the_warnings_are_strict_bounds():
    at_bound = ScanHeader("t1.nii", "", (1.0, 1.0, 4.5), (57.6 / 0.9 * 3, 192.0, 0.9 * 96))  # 1.5 x 3 mm; 0.9 x 96 mm
    assert scan_warnings(TRAINED, at_bound) == []
    unknown = TrainedOn("x.csv", 1, 1, "unknown", None, None)
    assert scan_warnings(unknown, ScanHeader("flair.nii", "", (1.0, 1.0, 9.0), (10.0, 10.0, 10.0))) == []


def test_recording_the_training_data_leaves_the_runs_random_draws_alone(tmp_path):
    """The record is computed before training: a draw from torch's RNG here would change every
    run's training noise (it did: torchio draws while loading the first volume)."""
    import random

    import torch

    data = write_demo_like(tmp_path / "data")
    module = VolumeDataModule(data_root=str(data), train_csv="splits/train_healthy.csv", val_csv="splits/val_healthy.csv",
                              batch_size=2, preprocessing={"crop_shape": None, "percentiles": None, "target_shape": None})
    torch.manual_seed(3), np.random.seed(3), random.seed(3)
    before = (torch.random.get_rng_state(), np.random.get_state()[1].copy(), random.getstate())
    from_data_module(module)
    assert torch.equal(before[0], torch.random.get_rng_state())
    assert (before[1] == np.random.get_state()[1]).all() and before[2] == random.getstate()


def test_the_readme_lists_spellings_as_they_are_read():
    """README's `uad predict` paragraph: each listed spelling names a contrast (those before `flair` post-contrast),
    each listed negation after "T1" reads plain T1."""
    text = " ".join((Path(__file__).resolve().parents[2] / "README.md").read_text().split())
    named, negated = re.search(r"NIfTI description \(([^;]*); a negated agent, ([^;]*) are not post-contrast;", text).groups()
    named_words, negated_words = re.findall(r"`([^`]+)`", named), re.findall(r"`([^`]+)`", negated)
    post = named_words[:named_words.index("flair")]
    assert len(post) >= 6 and len(negated_words) >= 4
    for word in post:
        assert scan_contrast("scan.nii", word) == "t1 post-contrast", word
    for word in named_words[len(post):]:
        assert scan_contrast("scan.nii", word) not in (None, "t1 post-contrast"), word
    for word in negated_words:
        assert scan_contrast("scan.nii", f"T1 {word}") == "t1", word


def test_the_contrast_of_2d_training_images_is_what_their_path_names(tmp_path):
    """An image file has no header: the record reads the contrast from the first training image's path, so
    predict can warn about a scan of another contrast (it had recorded "unknown" for every 2-D checkpoint)."""
    from types import SimpleNamespace

    (tmp_path / "AXT2").mkdir()
    (tmp_path / "AXT2" / "file_001.png").write_bytes(b"")
    (tmp_path / "train.csv").write_text("filename\nAXT2/file_001.png\n")
    module = SimpleNamespace(train_csv="train.csv", data_root=str(tmp_path), reading=SimpleNamespace(target_size=(32, 32)))
    record = from_data_module(module)
    assert record.contrast == "t2" and record.grid_shape == (32, 32, 1) and record.volumes == 1
    (tmp_path / "train.csv").write_text("filename\nAXT2/file_001.png\n".replace("AXT2/", ""))
    (tmp_path / "file_001.png").write_bytes(b"")
    assert from_data_module(module).contrast == "unknown"
