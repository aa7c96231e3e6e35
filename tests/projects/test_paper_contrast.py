"""Every volume paper config reads the authors' split CSVs as T2 with their IXI subject filter
(issue 18): `mode: t2` and `keep_list: splits/avail_t2.csv`, as every released experiment of the
three originals (`mode: t2`; their IXI datamodule keeps the rows listed in avail_t2.csv). Their
papers report T1 results too (`mode=t1` in the MHD and SSIM READMEs): the T1 variants
(`*_t1_paper.yaml`) read the same CSVs as T1, every row, no subject filter. ATLAS_v2 (T1 only)
reads T1 under either mode, as their ATLAS_v2 datamodule.

Recorded from FinnBehrendt/Conditioned-Diffusion-Models-UAD @ c5904a7, Data/splits, by their
IXI datamodule's filter (pandas, in a scratch folder): IXI_train_fold0.csv 387 -> 385 rows
(IXI309-IOP-0897 and IXI500-Guys-1017 have no T2), IXI_val_fold0.csv 44 -> 44, IXI_test.csv
160 -> 158 (IXI116-Guys-0739, IXI182-Guys-0792); our reader keeps the same rows in the same
order on their CSVs. The CSVs below copy their layout with those subjects and a few others;
`test_paper_configs_keep_the_authors_fold_counts` rebuilds them at their scale (row counts, rows
listed twice and subjects without T2 as recorded in tests/fixtures/parity/authors_ixi_splits.json:
their repository has no licence, so their CSVs are not shipped) and asserts the counts as numbers.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from core.config.configurator import load_config
from data.nifti_io import save_nifti
from data.volume_dataset import VolumeSet

ROOT = Path(__file__).resolve().parents[2]
PAPERS = [ROOT / p for p in ("projects/DDPM/configs/ddpm_paper.yaml", "projects/cDDPM/configs/cddpm_paper.yaml",
                             "projects/SSIM/configs/ssim_ensemble_paper.yaml", "projects/MHD/configs/mhd_paper.yaml")]
SPARK = ROOT / "projects/cDDPM/configs/spark_pretrain_paper.yaml"
T1_PAPERS = sorted(ROOT.glob("projects/*/configs/*_t1_paper.yaml"))
IXI_HEADER = ',img_name,"SEX_ID (1=m, 2=f)",age,label,img_path,mask_path,seg_path,Agegroup'
IXI_ROW = "{i},{n}_t1.nii.gz,1,55.8,0,/Train/ixi/t1/{n}_t1.nii.gz,/Train/ixi/mask/{n}_mask.nii.gz,,2.0"
BRATS_HEADER = ",img_name,age,label,img_path,mask_path,seg_path"
BRATS_ROW = "{i},{n},,1,/Test/Brats21/t1/{n}_t1.nii.gz,/Test/Brats21/mask/{n}_mask.nii.gz,/Test/Brats21/seg/{n}_seg.nii.gz"
NO_T2 = {"train": ["IXI309-IOP-0897", "IXI500-Guys-1017"], "val": [], "test": ["IXI116-Guys-0739", "IXI182-Guys-0792"]}
WITH_T2 = {"train": ["IXI076-Guys-0753", "IXI167-HH-1569"], "val": ["IXI357-HH-2076"], "test": ["IXI105-HH-1471"]}
# the user's edit the protocol's comment asks for: the demo CSVs -> the authors' (fold 0)
AUTHORS_CSVS = {"train_csv": "splits/IXI_train_fold0.csv", "val_csv": "splits/IXI_val_fold0.csv",
                "val_healthy": "splits/IXI_val_fold0.csv", "test_healthy": "splits/IXI_test.csv",
                "labelled_val": "splits/Brats21_val.csv", "labelled_test": "splits/Brats21_test.csv"}


@pytest.fixture(scope="module")
def authors_data(tmp_path_factory) -> Path:
    """Their Data folder: T1 scans of every subject, T2 only where avail_t2.csv lists one."""
    data = tmp_path_factory.mktemp("Data")
    brain = np.zeros((8, 8, 4), np.float32)
    brain[2:6, 2:6, 1:3] = 1
    for split in ("train", "val", "test"):
        names = NO_T2[split] + WITH_T2[split]
        rows = [IXI_ROW.format(i=i, n=n) for i, n in enumerate(names)]
        (data / "splits").mkdir(exist_ok=True)
        csv = {"train": "IXI_train_fold0.csv", "val": "IXI_val_fold0.csv", "test": "IXI_test.csv"}[split]
        (data / "splits" / csv).write_text("\n".join([IXI_HEADER, *rows]) + "\n")
        for n in names:
            save_nifti(data / f"Train/ixi/t1/{n}_t1.nii.gz", brain, np.eye(4))
            save_nifti(data / f"Train/ixi/mask/{n}_mask.nii.gz", brain > 0, np.eye(4))
        for n in WITH_T2[split]:
            save_nifti(data / f"Train/ixi/t2/{n}_t2.nii.gz", brain * 0.5, np.eye(4))
    listed = [f"{n}_t2.nii.gz" for names in WITH_T2.values() for n in names] + ["IXI999-HH-0000_t2.nii.gz"]
    (data / "splits" / "avail_t2.csv").write_text(",0\n" + "".join(f"{i},{n}\n" for i, n in enumerate(listed)))
    seg = np.zeros_like(brain)
    seg[3:5, 3:5, 1:3] = 1
    for split, names in (("val", ["BraTS2021_01122"]), ("test", ["BraTS2021_00538", "BraTS2021_01589"])):
        rows = [BRATS_ROW.format(i=i, n=n) for i, n in enumerate(names)]
        (data / "splits" / f"Brats21_{split}.csv").write_text("\n".join([BRATS_HEADER, *rows]) + "\n")
        for n in names:  # their BraTS layout: every contrast of every subject
            for contrast in ("t1", "t2"):
                save_nifti(data / f"Test/Brats21/{contrast}/{n}_{contrast}.nii.gz", brain * (0.5 if contrast == "t2" else 1), np.eye(4))
            save_nifti(data / f"Test/Brats21/mask/{n}_mask.nii.gz", brain > 0, np.eye(4))
            save_nifti(data / f"Test/Brats21/seg/{n}_seg.nii.gz", seg, np.eye(4))
    return data


def _kept(params: dict, csv: str, root: Path) -> VolumeSet:
    """The set the config's params read from `csv` (files checked, nothing loaded)."""
    params = {**params, **params.get("contrast", {})}  # a training data module states them as its `contrast` part
    keys = ("preprocessing", "mode", "keep_list")
    return VolumeSet(csv, str(root), **{k: params[k] for k in keys if k in params}, cache=False)


def _names(volumes: VolumeSet) -> list[str]:
    return [r.img_name for r in volumes._rows]


def _assert_t2(volumes: VolumeSet) -> None:
    assert all("/t2/" in str(r.img_path) and r.img_path.name.endswith("_t2.nii.gz") for r in volumes._rows)
    assert float(volumes[0].image.max()) > 0  # loads (the T2 scan exists)


@pytest.mark.parametrize("path", [*PAPERS, SPARK], ids=lambda p: p.stem)
def test_paper_training_reads_t2_of_subjects_with_t2(path, authors_data):
    train = load_config(path)["trainer"]["data_loader"]["params"]
    assert (train["contrast"]["mode"], train["contrast"]["keep_list"]) == ("t2", "splits/avail_t2.csv")
    for key, split in (("train_csv", "train"), ("val_csv", "val")):
        volumes = _kept(dict(train, preprocessing={"crop_shape": None, "percentiles": None, "target_shape": None}),
                        AUTHORS_CSVS[key], authors_data)
        assert _names(volumes) == [f"{n}_t1.nii.gz" for n in WITH_T2[split]]
        _assert_t2(volumes)


@pytest.mark.parametrize("path", PAPERS, ids=lambda p: p.stem)
def test_paper_evaluation_reads_t2_and_filters_only_the_ixi_sets(path, authors_data):
    loader = load_config(path)["downstream_tasks"]["anomaly_detection"]["data_loader"]
    shared = dict(loader["params"], preprocessing={"crop_shape": None, "percentiles": None, "target_shape": None})
    assert shared["mode"] == "t2"
    datasets = loader["datasets"]
    for name, split in (("val_healthy", "val"), ("test_healthy", "test")):
        volumes = _kept({**shared, **datasets[name]}, AUTHORS_CSVS[name], authors_data)
        assert _names(volumes) == [f"{n}_t1.nii.gz" for n in WITH_T2[split]]
        _assert_t2(volumes)
    labelled = [n for n in datasets if n not in ("val_healthy", "test_healthy")]
    assert labelled and all("keep_list" not in datasets[n] for n in labelled)  # BraTS / MSLUB: no subject filter
    for name in labelled:
        csv = AUTHORS_CSVS["labelled_val" if name.startswith("val_") else "labelled_test"]
        volumes = _kept({**shared, **datasets[name]}, csv, authors_data)
        assert len(volumes) == (1 if name.startswith("val_") else 2)
        _assert_t2(volumes)


def test_the_subject_filter_needs_its_list_only_for_t1_named_rows(authors_data, tmp_path):
    """The demo data (no `t1` in its paths) reads as given under mode: t2 without an avail_t2.csv;
    the authors' CSVs without it stop with one line naming the missing list."""
    from dl_utils.errors import UserInputError

    paper = load_config(PAPERS[0])["trainer"]["data_loader"]["params"]
    (tmp_path / "splits").mkdir()
    brain = np.zeros((8, 8, 4), np.float32)
    brain[2:6, 2:6, 1:3] = 1
    save_nifti(tmp_path / "volumes/a.nii.gz", brain, np.eye(4))
    save_nifti(tmp_path / "volumes/a_mask.nii.gz", brain > 0, np.eye(4))
    (tmp_path / "splits/train_healthy.csv").write_text(
        "img_name,age,label,img_path,mask_path,seg_path\na,,0,volumes/a.nii.gz,volumes/a_mask.nii.gz,\n")
    demo = _kept(dict(paper, preprocessing=None), "splits/train_healthy.csv", tmp_path)
    assert _names(demo) == ["a"] and demo._rows[0].img_path == tmp_path / "volumes/a.nii.gz"
    (tmp_path / "splits/IXI_train_fold0.csv").write_text((authors_data / "splits/IXI_train_fold0.csv").read_text())
    with pytest.raises(UserInputError, match="avail_t2.csv"):
        _kept(dict(paper, preprocessing=None), "splits/IXI_train_fold0.csv", tmp_path)


AUTHORS_SPLITS = json.loads((ROOT / "tests/fixtures/parity/authors_ixi_splits.json").read_text())
FOLD0_CSVS = {"train_csv": "IXI_train_fold0.csv", "val_csv": "IXI_val_fold0.csv", "test_healthy": "IXI_test.csv"}


def _paper_readers(path: Path) -> dict[str, dict]:
    """(mode, keep_list) the paper config reads each of the authors' IXI CSVs with."""
    config = load_config(path)
    contrast = config["trainer"]["data_loader"]["params"]["contrast"]
    readers = {key: {"mode": contrast["mode"], "keep_list": contrast["keep_list"]} for key in ("train_csv", "val_csv")}
    if "anomaly_detection" in (config.get("downstream_tasks") or {}):
        loader = config["downstream_tasks"]["anomaly_detection"]["data_loader"]
        test = {**loader["params"], **loader["datasets"]["test_healthy"]}
        readers["test_healthy"] = {"mode": test["mode"], "keep_list": test.get("keep_list")}
    return readers


def _write_at_their_scale(folder: Path) -> Path:
    """CSVs with the authors' row counts and layout (their recorded rows listed twice, their subjects
    without T2), subject names made up except those; avail_t2.csv lists every other subject."""
    (folder / "splits").mkdir(parents=True)
    with_t2 = []
    for csv, facts in AUTHORS_SPLITS["splits"].items():
        unique = facts["rows_t1"] - facts["rows_listed_twice"]
        names = facts["without_t2"] + [f"IXI{900 + len(with_t2) + i:04d}-HH-{csv[4:8]}" for i in range(unique - len(facts["without_t2"]))]
        with_t2 += names[len(facts["without_t2"]):]
        listed = names + names[len(facts["without_t2"]):][: facts["rows_listed_twice"]]
        (folder / "splits" / csv).write_text("\n".join([IXI_HEADER, *[IXI_ROW.format(i=i, n=n) for i, n in enumerate(listed)]]) + "\n")
    (folder / "splits/avail_t2.csv").write_text(",0\n" + "".join(f"{i},{n}_t2.nii.gz\n" for i, n in enumerate(with_t2)))
    return folder


@pytest.mark.parametrize("path", [*PAPERS, SPARK], ids=lambda p: p.stem)
def test_paper_configs_keep_the_authors_fold_counts(path, tmp_path):
    """Fold 0 at the authors' scale, read as each paper config reads it: 387 -> 385 training rows,
    44 -> 44 validation rows, IXI test 160 -> 158 (recorded from their CSVs, authors_ixi_splits.json);
    rows listed twice stay, as their datamodule keeps them."""
    from data.csv_splits import read_volume_split

    root = _write_at_their_scale(tmp_path)
    expected = {"train_csv": (387, 385), "val_csv": (44, 44), "test_healthy": (160, 158)}
    for key, reader in _paper_readers(path).items():
        facts = AUTHORS_SPLITS["splits"][FOLD0_CSVS[key]]
        assert (facts["rows_t1"], facts["rows_t2"]) == expected[key]
        csv = f"splits/{FOLD0_CSVS[key]}"
        assert len(read_volume_split(csv, root)) == facts["rows_t1"]
        rows = read_volume_split(csv, root, reader["mode"], reader["keep_list"])
        assert len(rows) == facts["rows_t2"], (key, reader)
        assert not {r.img_name.removesuffix("_t1.nii.gz") for r in rows} & set(facts["without_t2"])


@pytest.mark.skipif(not os.environ.get("UAD_AUTHORS_SPLITS"), reason="set UAD_AUTHORS_SPLITS to the authors' Data/splits")
@pytest.mark.parametrize("path", [*PAPERS, SPARK], ids=lambda p: p.stem)
def test_paper_configs_on_the_authors_own_csvs(path):
    """With their CSVs at hand (UAD_AUTHORS_SPLITS=<their repo>/Data/splits, checked by sha256):
    the recorded counts through each paper config's readers."""
    import hashlib

    from data.csv_splits import read_volume_split

    splits = Path(os.environ["UAD_AUTHORS_SPLITS"])
    for name, digest in AUTHORS_SPLITS["sha256"].items():
        assert hashlib.sha256((splits / name).read_bytes()).hexdigest() == digest, name
    for key, reader in _paper_readers(path).items():
        facts = AUTHORS_SPLITS["splits"][FOLD0_CSVS[key]]
        rows = read_volume_split(f"splits/{FOLD0_CSVS[key]}", splits.parent, reader["mode"], reader["keep_list"])
        assert len(rows) == facts["rows_t2"], key


# Recorded from the originals (as data, not their code): their MSLUB datamodules' img_path rewrite
# under mode t2 (src/datamodules/Datamodules_eval.MSLUB, pandas str.replace) applied to their own
# MSLUB CSV row of patient13 (C Data/splits/MSLUB_test.csv), and where their preparation puts the
# T2 scan. C = Conditioned-Diffusion-Models-UAD @ c5904a7, M = Mahalanobis-Unsupervised-Anomaly-
# Detection @ c968b2b, S = Ensembled-SSIM-for-Unsupervised-Anomaly-Detection @ 06da200.
MSLUB_ROW = "/Test/MSLUB/t1/patient13_t1.nii.gz"
MSLUB_REWRITES = {
    "C": "/Test/MSLUB/t1/patient13_t2.nii.gz",  # 'uniso/t1' -> 'uniso/t2' (no row has it), 't1.nii.gz' -> 't2.nii.gz'
    "M": "/Test/MSLUB/t2/patient13_t2.nii.gz",  # 'MSLUB/t1' -> 'MSLUB/t2', 't1.nii.gz' -> 't2.nii.gz'
    "S": "/Test/MSLUB/t2/patient13_t2.nii.gz",  # as M
    "whole-path replace": "/Test/MSLUB/t2/patient23_t2.nii.gz",  # their IXI / BraTS rewrite, str.replace('t1', 't2')
}
# C preprocessing/prepare_MSLUB.sh: resample.py -o $DATA_DIR/v1resampled/MSLUB/t2, files renamed
# `${file%_T2W.nii.gz}_t2.nii.gz`, then hd-bet, registration (--modality=_t2) and cut.py -mode t2,
# which writes <out>/t2/<id>_t2.nii.gz; C README's data layout lists Test/MSLUB/{mask,t2,seg}.
MSLUB_PREPARED_T2 = "Test/MSLUB/t2/patient13_t2.nii.gz"
# their 30 MSLUB rows (val 10, test 20) are all /Test/MSLUB/t1/patientNN_t1.nii.gz; 10 of them
# (patient10 ... patient19) name a subject with 't1' inside its name, where the whole-path replace
# reads another subject (patient13 -> patient23). Over all 12218 img_path rows of the three
# repositories' split CSVs (C 3596, M 4311, S 4311: M's files), ours under mode t2 equals their
# rewrite of that data set on every row (for MSLUB M's / S's, C's 30 rows included: see above),
# their 1310 ATLAS_v2 rows included: their ATLAS_v2 datamodule rewrites nothing (T1 only in their
# layout, Test/ATLAS_v2/{mask,t1,seg}), and ours keeps those rows T1 too (`T1_ONLY_FOLDERS`).


def test_mslub_t2_path_is_where_their_preparation_writes_it(tmp_path):
    """Ours follows M and S (the later repositories): the folder `t1` and the file's `t1` become t2,
    which is where C's own prepare_MSLUB.sh writes the T2 scan. C's rewrite keeps the folder
    `MSLUB/t1/`, where their preparation writes nothing (their release would stop on a missing
    file); the whole-path replace their IXI and BraTS rewrite uses would read patient23's scan as
    patient13 (10 of their 30 MSLUB rows). So the paper configs read M's path, not C's."""
    from data.csv_splits import contrast_path, read_volume_split

    ours = contrast_path(MSLUB_ROW, "t2")
    assert ours == MSLUB_REWRITES["M"] == MSLUB_REWRITES["S"] == "/" + MSLUB_PREPARED_T2
    assert ours not in (MSLUB_REWRITES["C"], MSLUB_REWRITES["whole-path replace"])
    brain = np.zeros((8, 8, 4), np.float32)
    brain[2:6, 2:6, 1:3] = 1
    for patient, value in (("patient13", 0.5), ("patient23", 0.9)):  # their layout after prepare_MSLUB.sh
        save_nifti(tmp_path / f"Test/MSLUB/t2/{patient}_t2.nii.gz", brain * value, np.eye(4))
        save_nifti(tmp_path / f"Test/MSLUB/t1/{patient}_t1.nii.gz", brain, np.eye(4))
        save_nifti(tmp_path / f"Test/MSLUB/mask/{patient}_mask.nii.gz", brain > 0, np.eye(4))
        save_nifti(tmp_path / f"Test/MSLUB/seg/{patient}_seg.nii.gz", brain > 0, np.eye(4))
    (tmp_path / "MSLUB_test.csv").write_text(
        ",img_name,age,sex,ms_type,label,img_path,mask_path,seg_path,Agegroup\n"
        f"12,patient13,26,M,RR,1,{MSLUB_ROW},/Test/MSLUB/mask/patient13_mask.nii.gz,/Test/MSLUB/seg/patient13_seg.nii.gz,1.0\n")
    (row,) = read_volume_split("MSLUB_test.csv", tmp_path, "t2")
    assert row.img_path == tmp_path / MSLUB_PREPARED_T2
    assert not (tmp_path / MSLUB_REWRITES["C"].lstrip("/")).exists()
    volume = VolumeSet("MSLUB_test.csv", str(tmp_path), {"crop_shape": None, "percentiles": None, "target_shape": None}, mode="t2")[0]
    assert float(volume.image.max()) == pytest.approx(0.5)  # patient13's T2, not patient23's (0.9) nor its T1 (1.0)


# Their ATLAS_v2 CSVs (M / S Data/splits/ATLAS_v2_{val,test}.csv: these columns among ~30, paths as
# theirs) and WMH CSVs; their layout holds ATLAS_v2 in T1 only (README: Test/ATLAS_v2/{mask,t1,seg}).
ATLAS_HEADER = ",img_name,label,age,img_path,mask_path,seg_path"
ATLAS_ROW = ("{i},{n},1,,/Test/ATLAS_v2/t1/{n}_ses-1_space-MNI152NLin2009aSym_t1.nii.gz,"
             "/Test/ATLAS_v2/mask/{n}_ses-1_space-MNI152NLin2009aSym_mask.nii.gz,"
             "/Test/ATLAS_v2/seg/{n}_ses-1_space-MNI152NLin2009aSym_seg.nii.gz")
WMH_ROW, WMH_REWRITE = "/Test/WMH/t1/Utrecht_49_t1.nii.gz", "/Test/WMH/t2/Utrecht_49_t2.nii.gz"  # their str.replace('t1', 't2')


def _write_atlas(data: Path) -> None:
    brain = np.zeros((8, 8, 4), np.float32)
    brain[2:6, 2:6, 1:3] = 1
    names = ["sub-r052s007", "sub-r031s006"]
    (data / "splits" / "ATLAS_v2_test.csv").write_text(
        "\n".join([ATLAS_HEADER, *[ATLAS_ROW.format(i=i, n=n) for i, n in enumerate(names)]]) + "\n")
    for n in names:
        stem = f"{n}_ses-1_space-MNI152NLin2009aSym"
        save_nifti(data / f"Test/ATLAS_v2/t1/{stem}_t1.nii.gz", brain * 0.7, np.eye(4))
        save_nifti(data / f"Test/ATLAS_v2/mask/{stem}_mask.nii.gz", brain > 0, np.eye(4))
        save_nifti(data / f"Test/ATLAS_v2/seg/{stem}_seg.nii.gz", brain > 0, np.eye(4))


@pytest.mark.parametrize("path", [p for p in (*PAPERS, *T1_PAPERS) if "anomaly_detection" in load_config(p).get("downstream_tasks", {})],
                         ids=lambda p: p.stem)
def test_atlas_reads_its_t1_scans_under_either_mode(path, tmp_path, caplog):
    """Their ATLAS_v2 datamodule never rewrites img_path, so their `mode: t2` runs read ATLAS's T1
    scans (the only ones their layout has); ours too, with one info line, where it used to look for
    `ATLAS_v2/t2/..._t2.nii.gz`. Other data sets still change (WMH as their whole-path replace)."""
    from data.csv_splits import contrast_path

    (tmp_path / "splits").mkdir()
    _write_atlas(tmp_path)
    loader = load_config(path)["downstream_tasks"]["anomaly_detection"]["data_loader"]
    params = dict(loader["params"], preprocessing={"crop_shape": None, "percentiles": None, "target_shape": None})
    with caplog.at_level("INFO", logger="data.csv_splits"):
        volumes = _kept(params, "splits/ATLAS_v2_test.csv", tmp_path)
    assert [r.img_path.relative_to(tmp_path).parts[:3] for r in volumes._rows] == [("Test", "ATLAS_v2", "t1")] * 2
    assert all(r.img_path.name.endswith("_t1.nii.gz") for r in volumes._rows)
    assert float(volumes[0].image.max()) > 0  # loads (the T1 scan, the only one there)
    assert ("read as T1 under mode: t2" in caplog.text) == (params["mode"] == "t2")
    row = ATLAS_ROW.format(i=0, n="sub-r052s007").split(",")[4]
    assert contrast_path(row, "t2") == row and contrast_path(WMH_ROW, "t2") == WMH_REWRITE


def _variant_of(path: Path) -> tuple[dict, dict]:
    """The T1 variant's config and what its base becomes with the contrast switched to T1 by hand."""
    import copy

    import yaml

    bases = yaml.safe_load(path.read_text())["base"]
    base = ROOT / (bases if isinstance(bases, str) else bases[0])  # the T2 paper config, then the T1 protocol
    expected = copy.deepcopy(load_config(base))
    expected["trainer"]["data_loader"]["params"]["contrast"] = {"mode": "t1", "keep_list": None}
    evaluation = (expected.get("downstream_tasks") or {}).get("anomaly_detection")
    if evaluation:
        evaluation["data_loader"]["params"]["mode"] = "t1"
        for spec in evaluation["data_loader"]["datasets"].values():
            if "keep_list" in spec:
                spec["keep_list"] = None
    return load_config(path), expected


@pytest.mark.parametrize("path", T1_PAPERS, ids=lambda p: p.stem)
def test_t1_variants_differ_from_their_base_only_in_contrast(path):
    """Each `*_t1_paper.yaml` is its T2 paper config with `mode: t1` and no keep_list wherever the
    base has them; MHD's cDDPM encoder comes from the T1 Spark pre-training instead of the T2 one."""
    assert path.with_name(path.name.replace("_t1_paper", "_paper")).is_file()
    config, expected = _variant_of(path)
    init = (expected["trainer"]["params"].get("weights") or {}).get("init")
    if init:  # the newest spark_pretrain_t1_paper run's export, under the same file name as the T2 one
        spark_t1 = ROOT / "projects/cDDPM/configs/spark_pretrain_t1_paper.yaml"
        assert spark_t1 in T1_PAPERS
        export = load_config(spark_t1)["trainer"]["params"]["weights"]["export"]["backbone"]
        expected["trainer"]["params"]["weights"]["init"] = {"encoder.backbone": f"runs/cDDPM/{spark_t1.stem}/*/{export}"}
    assert config == expected


@pytest.mark.parametrize("path", T1_PAPERS, ids=lambda p: p.stem)
def test_t1_variants_read_every_subject_as_t1(path, authors_data):
    """On the authors' CSV layout: training, validation and every evaluation set read the T1 scan
    each row names, the subjects without T2 included (no avail_t2.csv filter)."""
    config = load_config(path)
    plain = {"crop_shape": None, "percentiles": None, "target_shape": None}
    train = config["trainer"]["data_loader"]["params"]
    readers = [(dict(train, preprocessing=plain), AUTHORS_CSVS[key], split) for key, split in (("train_csv", "train"), ("val_csv", "val"))]
    if "anomaly_detection" in (config.get("downstream_tasks") or {}):
        loader = config["downstream_tasks"]["anomaly_detection"]["data_loader"]
        shared = dict(loader["params"], preprocessing=plain)
        readers += [({**shared, **loader["datasets"][n]}, AUTHORS_CSVS[n], s) for n, s in (("val_healthy", "val"), ("test_healthy", "test"))]
        readers += [({**shared, **spec}, AUTHORS_CSVS["labelled_test"], None) for n, spec in loader["datasets"].items()
                    if n not in ("val_healthy", "test_healthy")]
    for params, csv, split in readers:
        volumes = _kept(params, csv, authors_data)
        if split:
            assert _names(volumes) == [f"{n}_t1.nii.gz" for n in NO_T2[split] + WITH_T2[split]]
        assert all("/t1/" in str(r.img_path) and r.img_path.name.endswith("_t1.nii.gz") for r in volumes._rows)
        assert float(volumes[0].image.max()) == pytest.approx(1.0)  # the T1 scan (the T2 ones are 0.5)


@pytest.mark.parametrize("path", T1_PAPERS, ids=lambda p: p.stem)
def test_t1_variants_keep_every_row_of_the_authors_folds(path, tmp_path):
    """Fold 0 at the authors' scale through each T1 variant: 387, 44 and 160 rows, as their CSVs."""
    from data.csv_splits import read_volume_split

    root = _write_at_their_scale(tmp_path)
    readers = _paper_readers(path)
    assert all(reader == {"mode": "t1", "keep_list": None} for reader in readers.values())
    for key, reader in readers.items():
        facts = AUTHORS_SPLITS["splits"][FOLD0_CSVS[key]]
        rows = read_volume_split(f"splits/{FOLD0_CSVS[key]}", root, reader["mode"], reader["keep_list"])
        assert len(rows) == facts["rows_t1"] == {"train_csv": 387, "val_csv": 44, "test_healthy": 160}[key]
