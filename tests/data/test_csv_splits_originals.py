"""The authors' split CSVs load unchanged: extra columns, `/`-rooted paths, repeated rows, `mode: t2`."""
import logging

import numpy as np
import pytest

from data.csv_splits import contrast_path, read_volume_split
from data.nifti_io import save_nifti
from data.volume_dataset import VolumeSet
from dl_utils.errors import UserInputError

# Header and row layout copied from the originals' Data/splits/IXI_train_fold0.csv (values shortened).
HEADER = ',img_name,"SEX_ID (1=m, 2=f)",HEIGHT,age,label,img_path,mask_path,seg_path,Agegroup'
ROW = '{i},IXI{i:03d}-Guys_t1.nii.gz,1,0,55.8,0,/Train/ixi/t1/IXI{i:03d}-Guys_t1.nii.gz,/Train/ixi/mask/IXI{i:03d}-Guys_mask.nii.gz,,2.0'


@pytest.fixture()
def originals_root(tmp_path):
    data = tmp_path / "Data"
    brain = np.zeros((8, 8, 4), np.float32)
    brain[2:6, 2:6, 1:3] = 1
    for i in (1, 2):
        for contrast in ("t1", "t2"):
            save_nifti(data / f"Train/ixi/{contrast}/IXI{i:03d}-Guys_{contrast}.nii.gz", brain * (0.5 if contrast == "t2" else 1.0), np.eye(4))
        save_nifti(data / f"Train/ixi/mask/IXI{i:03d}-Guys_mask.nii.gz", brain > 0, np.eye(4))
    rows = [ROW.format(i=1), ROW.format(i=2), ROW.format(i=1)]  # scan 1 listed twice, as in their folds
    (data / "fold.csv").write_text("\n".join([HEADER, *rows]) + "\n")
    return data


def test_their_csv_loads_with_one_warning_for_repeated_rows(originals_root, caplog):
    with caplog.at_level(logging.WARNING):
        rows = read_volume_split("fold.csv", originals_root)
    assert [r.img_name for r in rows] == ["IXI001-Guys_t1.nii.gz", "IXI002-Guys_t1.nii.gz", "IXI001-Guys_t1.nii.gz"]
    assert rows[0].img_path == originals_root / "Train/ixi/t1/IXI001-Guys_t1.nii.gz"  # `/` = the data folder
    warnings = [r for r in caplog.records if "more than once" in r.message]
    assert len(warnings) == 1


def test_mode_t2_rewrites_img_path_as_their_datamodules(originals_root):
    # their code: img_path.str.replace('t1', mode) (train) and FLAIR.nii.gz -> <mode>.nii.gz (eval)
    assert contrast_path("/Train/ixi/t1/IXI1_t1.nii.gz", "t2") == "/Train/ixi/t2/IXI1_t2.nii.gz"
    assert contrast_path("/Test/x/FLAIR.nii.gz", "t2") == "/Test/x/t2.nii.gz"
    assert contrast_path("/a/t1/b_t1.nii.gz", "t1") == "/a/t1/b_t1.nii.gz"
    volumes = VolumeSet("fold.csv", str(originals_root), {"crop_shape": None, "percentiles": None, "target_shape": None}, mode="t2")
    assert len(volumes) == 3 and float(volumes[0].image.max()) == pytest.approx(0.5)
    with pytest.raises(ValueError):
        contrast_path("x", "pd")


def test_same_name_with_other_paths_is_refused(originals_root):
    bad = ROW.format(i=1).replace("/mask/IXI001", "/mask/IXI002")
    (originals_root / "bad.csv").write_text("\n".join([HEADER, ROW.format(i=1), bad]) + "\n")
    with pytest.raises(UserInputError, match="different paths"):
        read_volume_split("bad.csv", originals_root)


def test_keep_list_drops_subjects_without_t2_as_their_ixi_datamodule(originals_root, caplog):
    # their avail_t2.csv: a pandas-written list (unnamed index, column "0") of T2 names
    (originals_root / "avail_t2.csv").write_text(",0\n0,IXI002-Guys_t2.nii.gz\n")
    with caplog.at_level(logging.INFO):
        rows = read_volume_split("fold.csv", originals_root, mode="t2", keep_list="avail_t2.csv")
    assert [r.img_name for r in rows] == ["IXI002-Guys_t1.nii.gz"]
    assert rows[0].img_path == originals_root / "Train/ixi/t2/IXI002-Guys_t2.nii.gz"
    assert any("2 without a T2 scan" in r.message for r in caplog.records)
    volumes = VolumeSet("fold.csv", str(originals_root), {"crop_shape": None, "percentiles": None, "target_shape": None},
                        mode="t2", keep_list="avail_t2.csv")
    assert len(volumes) == 1
    with pytest.raises(UserInputError, match="mode: t2"):
        read_volume_split("fold.csv", originals_root, keep_list="avail_t2.csv")
    (originals_root / "none.csv").write_text(",0\n0,IXI999-HH_t2.nii.gz\n")
    with pytest.raises(UserInputError, match="no row's img_name"):
        read_volume_split("fold.csv", originals_root, mode="t2", keep_list="none.csv")
