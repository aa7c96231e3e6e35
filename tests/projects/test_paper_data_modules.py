"""Every paper config's data parts, built as a run builds them (`core.run.assembly`), on a layout
of the authors' Data folder: the training data module (`build_data_module`) and the evaluation
sets (`build_datasets`) read the T2 scan of each subject with a T2 scan (issue 18).

The config travels the run's path (bases merged, `--set` applied, upgraded by the builder), with
only what a user of the authors' data writes: their fold-0 CSVs and a small crop (the papers'
pipeline otherwise: torchio, CurvatureFlow, percentiles, 2 mm, voxel order as stored). Every T1 and
T2 file has its own content (a ramp along another axis and a bright block placed by subject), so
each volume is compared with the preprocessed T2 file it must come from, and with the T1 file it
must not. MSLUB is laid out as their `preprocessing/prepare_MSLUB.sh` writes it (see
`test_paper_contrast.py::test_mslub_t2_path_is_where_their_preparation_writes_it`).
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from core.config.builder import ComponentBuilder
from core.config.configurator import apply_overrides, load_config, run_seed, shared_values
from core.run.assembly import build_data_module, build_datasets
from data.csv_splits import SplitRow
from data.nifti_io import save_nifti
from data.preprocessing import VolumePreprocessor
from data.volume_dataset import load_volume
from dl_utils.param_types import build_part

ROOT = Path(__file__).resolve().parents[2]
PAPERS = ["projects/DDPM/configs/ddpm_paper.yaml", "projects/cDDPM/configs/cddpm_paper.yaml",
          "projects/SSIM/configs/ssim_ensemble_paper.yaml", "projects/MHD/configs/mhd_paper.yaml",
          "projects/cDDPM/configs/spark_pretrain_paper.yaml"]
SHAPE = (20, 20, 12)
CROP = "[16, 16, 8]"  # instead of 192 x 192 x 100; then 2 mm as the papers: 8 x 8 x 4

IXI_HEADER = ',img_name,"SEX_ID (1=m, 2=f)",age,label,img_path,mask_path,seg_path,Agegroup'
IXI_ROW = "{i},{n}_t1.nii.gz,1,55.8,0,/Train/ixi/t1/{n}_t1.nii.gz,/Train/ixi/mask/{n}_mask.nii.gz,,2.0"
LABELLED_HEADER = {"Brats21": ",img_name,age,label,img_path,mask_path,seg_path",
                   "MSLUB": ",img_name,age,sex,ms_type,label,img_path,mask_path,seg_path,Agegroup"}
LABELLED_ROW = {"Brats21": "{i},{n},,1,/Test/Brats21/t1/{n}_t1.nii.gz,/Test/Brats21/mask/{n}_mask.nii.gz,/Test/Brats21/seg/{n}_seg.nii.gz",
                "MSLUB": "{i},{n},40,F,RR,1,/Test/MSLUB/t1/{n}_t1.nii.gz,/Test/MSLUB/mask/{n}_mask.nii.gz,/Test/MSLUB/seg/{n}_seg.nii.gz,1.0"}
IXI = {  # csv -> (subjects with a T2 scan, subjects without)
    "IXI_train_fold0.csv": (["IXI076-Guys-0753", "IXI167-HH-1569"], ["IXI309-IOP-0897"]),
    "IXI_val_fold0.csv": (["IXI357-HH-2076"], ["IXI500-Guys-1017"]),
    "IXI_test.csv": (["IXI105-HH-1471"], ["IXI116-Guys-0739"]),
}
LABELLED = {  # csv -> subjects (every one has T1 and T2 files)
    "Brats21_val.csv": ("Brats21", ["BraTS2021_01122"]),
    "Brats21_test.csv": ("Brats21", ["BraTS2021_00538", "BraTS2021_01589"]),
    "MSLUB_val.csv": ("MSLUB", ["patient01"]),
    "MSLUB_test.csv": ("MSLUB", ["patient26", "patient13"]),
}


def _scan(contrast: str, k: int) -> np.ndarray:
    """T1: a ramp along x; T2: a ramp along y; a bright block whose place depends on the subject."""
    x, y, _ = np.meshgrid(*(np.arange(n, dtype=np.float32) for n in SHAPE), indexing="ij")
    scan = 0.2 + 0.6 * ((x if contrast == "t1" else y) / SHAPE[0])
    scan[5 + k % 8 : 8 + k % 8, 6:9, 4:8] += 0.5
    return scan


@pytest.fixture(scope="module")
def authors_data(tmp_path_factory) -> Path:
    """Their Data folder: splits/*.csv and avail_t2.csv; IXI T1 scans of every subject, T2 of those
    listed; BraTS / MSLUB T1 and T2 of every subject (MSLUB T2 in MSLUB/t2/, as prepare_MSLUB.sh)."""
    data = tmp_path_factory.mktemp("Data")
    (data / "splits").mkdir()
    brain = np.zeros(SHAPE, bool)
    brain[3:17, 3:17, 2:10] = True
    seg = np.zeros(SHAPE, np.float32)
    seg[8:11, 8:11, 4:7] = 1
    k = 0
    for csv, (with_t2, without) in IXI.items():
        names = without + with_t2
        (data / "splits" / csv).write_text("\n".join([IXI_HEADER, *(IXI_ROW.format(i=i, n=n) for i, n in enumerate(names))]) + "\n")
        for n in names:
            save_nifti(data / f"Train/ixi/t1/{n}_t1.nii.gz", _scan("t1", k) * brain, np.eye(4))
            save_nifti(data / f"Train/ixi/mask/{n}_mask.nii.gz", brain, np.eye(4))
            if n in with_t2:
                save_nifti(data / f"Train/ixi/t2/{n}_t2.nii.gz", _scan("t2", k) * brain, np.eye(4))
            k += 1
    listed = [f"{n}_t2.nii.gz" for with_t2, _ in IXI.values() for n in with_t2]
    (data / "splits/avail_t2.csv").write_text(",0\n" + "".join(f"{i},{n}\n" for i, n in enumerate(listed)))
    for csv, (folder, names) in LABELLED.items():
        rows = [LABELLED_ROW[folder].format(i=i, n=n) for i, n in enumerate(names)]
        (data / "splits" / csv).write_text("\n".join([LABELLED_HEADER[folder], *rows]) + "\n")
        for n in names:
            for contrast in ("t1", "t2"):
                save_nifti(data / f"Test/{folder}/{contrast}/{n}_{contrast}.nii.gz", _scan(contrast, k) * brain, np.eye(4))
            save_nifti(data / f"Test/{folder}/mask/{n}_mask.nii.gz", brain, np.eye(4))
            save_nifti(data / f"Test/{folder}/seg/{n}_seg.nii.gz", seg, np.eye(4))
            k += 1
    return data


LABELLED_SETS = {"hyper_spheres": "Brats21", "hypo_spheres": "MSLUB", "fpi": "Brats21", "deformation": "MSLUB"}


def _labelled_csv(name: str) -> str:
    """A labelled set of the paper protocol (val_/test_ pairs) -> the authors' BraTS21 or MSLUB CSV,
    as the protocol's comment tells a user of their data."""
    split, kind = name.split("_", 1)
    return f"splits/{LABELLED_SETS[kind]}_{split}.csv"


def _authors_config(path: str, data: Path) -> tuple[dict, ComponentBuilder]:
    """The paper config as a run reads it, with the user's edits for the authors' data (`--set`)."""
    config = load_config(ROOT / path)
    train = "trainer.data_loader.params"
    sets = [f"data_root={data}", f"{train}.train_csv=splits/IXI_train_fold0.csv", f"{train}.val_csv=splits/IXI_val_fold0.csv",
            f"{train}.preprocessing.crop_shape={CROP}"]
    for task, spec in (config.get("downstream_tasks") or {}).items():
        loader = f"downstream_tasks.{task}.data_loader"
        sets.append(f"{loader}.params.preprocessing.crop_shape={CROP}")
        for name in spec["data_loader"]["datasets"]:
            csv = {"val_healthy": "splits/IXI_val_fold0.csv", "test_healthy": "splits/IXI_test.csv"}.get(name) or _labelled_csv(name)
            sets.append(f"{loader}.datasets.{name}.csv={csv}")
    builder = ComponentBuilder(str(ROOT / path))
    return builder.upgrade(apply_overrides(config, sets, str(ROOT / path))), builder


def _file_image(data: Path, path: str, mask: str, preprocessing: dict) -> torch.Tensor:
    """A file's image through the config's pipeline, read directly (no split, no contrast choice)."""
    preprocessor = build_part(VolumePreprocessor, preprocessing, "preprocessing")
    return load_volume(SplitRow("file", math.nan, 0, data / path, data / mask, None), preprocessor).image


def _assert_reads(volumes: list, data: Path, expected: list[tuple[str, str, str]], preprocessing: dict) -> None:
    """volumes[i] is the T2 file expected[i] = (T1 path, T2 path, mask path), not its T1 file."""
    assert len(volumes) == len(expected)
    for volume, (t1, t2, mask) in zip(volumes, expected):
        torch.testing.assert_close(volume.image, _file_image(data, t2, mask, preprocessing))
        assert not torch.allclose(volume.image, _file_image(data, t1, mask, preprocessing), atol=0.05)


def _ixi(csv: str) -> list[tuple[str, str, str]]:
    return [(f"Train/ixi/t1/{n}_t1.nii.gz", f"Train/ixi/t2/{n}_t2.nii.gz", f"Train/ixi/mask/{n}_mask.nii.gz") for n in IXI[csv][0]]


def _labelled(csv: str) -> list[tuple[str, str, str]]:
    folder, names = LABELLED[csv]
    return [(f"Test/{folder}/t1/{n}_t1.nii.gz", f"Test/{folder}/t2/{n}_t2.nii.gz", f"Test/{folder}/mask/{n}_mask.nii.gz") for n in names]


def _volumes(dataset) -> list:
    """The volumes a slice data set draws from, in order."""
    if hasattr(dataset, "volumes"):
        return list(dataset.volumes)
    seen: dict[int, object] = {}
    for volume, _ in dataset.items:
        seen.setdefault(id(volume), volume)
    return list(seen.values())


@pytest.mark.parametrize("path", PAPERS, ids=lambda p: Path(p).stem)
def test_paper_training_data_module_reads_t2_of_subjects_with_t2(path, authors_data):
    """build_data_module, as `build_parts` calls it: training and validation keep the subjects of
    avail_t2.csv (names as in the CSV) and hold the preprocessed content of their T2 files."""
    config, builder = _authors_config(path, authors_data)
    module = build_data_module(builder, config, run_seed(config))
    preprocessing = config["trainer"]["data_loader"]["params"]["preprocessing"]
    for dataset, csv in ((module.train_dataset(), "IXI_train_fold0.csv"), (module.val_dataset(), "IXI_val_fold0.csv")):
        volumes = _volumes(dataset)
        assert [v.name for v in volumes] == [f"{n}_t1.nii.gz" for n in IXI[csv][0]]
        _assert_reads(volumes, authors_data, _ixi(csv), preprocessing)


@pytest.mark.parametrize("path", [p for p in PAPERS if "spark" not in p], ids=lambda p: Path(p).stem)
def test_paper_evaluation_sets_read_t2(path, authors_data):
    """build_datasets, as `build_evaluators` calls it: the healthy IXI sets keep the subjects with
    T2 and read their T2 files; BraTS21 and MSLUB read every row's T2 file (no subject filter)."""
    config, builder = _authors_config(path, authors_data)
    key = "downstream_tasks.anomaly_detection.data_loader"
    spec = config["downstream_tasks"]["anomaly_detection"]["data_loader"]
    datasets = build_datasets(builder, spec, key, shared_values(config))
    preprocessing = spec["params"]["preprocessing"]
    assert set(datasets) == set(spec["datasets"]) and len(datasets) == 10
    for name, volumes in datasets.items():
        csv = Path(spec["datasets"][name]["csv"]).name
        if csv.startswith("IXI"):
            assert [v.name for v in volumes] == [f"{n}_t1.nii.gz" for n in IXI[csv][0]]
            _assert_reads(list(volumes), authors_data, _ixi(csv), preprocessing)
        else:
            assert [v.name for v in volumes] == LABELLED[csv][1]
            _assert_reads(list(volumes), authors_data, _labelled(csv), preprocessing)
