"""Parity of the volume pipeline with the originals (issue 9, item 6).

Reference values in tests/fixtures/parity_data/volume_pipeline.{npz,json} were recorded by
running the originals' own `src/datamodules/create_dataset.py` (FinnBehrendt/Conditioned-
Diffusion-Models-UAD @ c5904a7: `sitk_reader` with CurvatureFlow, `get_transform`,
`get_augment` with `aug_intensity`) on the phantom below, outside this repository; see the
JSON for versions and settings. Only the recorded numbers live here.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
import torchio as tio

import data.augmentation as augmentation_module
from data.augmentation import Augmentation
from data.nifti_io import load_subject
from data.preprocessing import VolumePreprocessor, curvature_flow
from dl_utils.param_types import build_part

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "parity_data"
# The originals' settings as recorded: imageDim (48, 48, 30), rescaleFactor 2, perc 1 / 99.
PIPELINE = {"crop_shape": [48, 48, 30], "percentiles": [1, 99], "target_shape": None,
            "target_spacing": [2, 2, 2], "pipeline": "torchio", "curvature_flow": True}
# The originals' aug_intensity policy: torchio defaults with these probabilities.
AUGMENTATION = {"gamma_p": 0.5, "bias_field_p": 0.25, "blur_p": 0.25, "blur_std_max": 2.0,
                "ghosting_p": 0.5, "noise_p": 0.0, "affine_p": 0.0, "clip": False}
SEEDS = (0, 1, 2, 3, 7)


def phantom(shape=(50, 44, 34)):
    """Deterministic int16 head phantom (formula, no RNG): image, brain, lesion."""
    x, y, z = np.meshgrid(*[np.arange(n, dtype=np.float64) for n in shape], indexing="ij")
    c = [(n - 1) / 2 for n in shape]
    r = np.sqrt(((x - c[0]) / 20) ** 2 + ((y - c[1]) / 17) ** 2 + ((z - c[2]) / 13) ** 2)
    brain = r < 1.0
    img = 300 + 500 * np.cos(x / 3.1) * np.sin(y / 2.3 + z / 4.7) + 7 * ((x * 7 + y * 13 + z * 29) % 17)
    img = np.where(brain, img + 400, 20 * ((x + 2 * y + 3 * z) % 5))
    lesion = ((x - 30) ** 2 + (y - 25) ** 2 + (z - 18) ** 2) < 36
    img = np.where(lesion, img + 600, img)
    return np.round(img).astype(np.int16), brain.astype(np.uint8), (lesion & brain).astype(np.uint8)


@pytest.fixture(scope="module")
def reference():
    return dict(np.load(FIXTURES / "volume_pipeline.npz")), json.loads((FIXTURES / "volume_pipeline.json").read_text())


@pytest.fixture(scope="module")
def subject_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("phantom")
    img, brain, lesion = phantom()
    paths = {}
    for name, arr in (("image", img), ("mask", brain), ("seg", lesion)):
        paths[name] = folder / f"sub_{name}.nii.gz"
        nib.save(nib.Nifti1Image(arr, np.eye(4)), str(paths[name]))
    return paths


def test_curvature_flow_equals_originals_reader(reference, subject_files):
    ref, meta = reference
    image, _, _ = load_subject(subject_files["image"], subject_files["mask"])
    out = curvature_flow(image.data, image.spacing)
    assert hashlib.sha256(np.ascontiguousarray(out, np.float32).tobytes()).hexdigest() == meta["curvature_flow_sha256"]
    np.testing.assert_array_equal(out[:, :, 17], ref["curvature_flow_slice"])


def test_preprocessed_volume_and_labels_equal_originals(reference, subject_files):
    ref, meta = reference
    image, mask, seg = load_subject(subject_files["image"], subject_files["mask"], subject_files["seg"])
    pre = VolumePreprocessor(**PIPELINE)
    img, msk, sg = pre(image.data, mask, seg, spacing=image.spacing)
    assert img.shape == ref["image"].shape == (24, 24, 15)
    np.testing.assert_array_equal(img, ref["image"])  # bitwise, B-spline overshoot kept
    assert hashlib.sha256(img.astype(np.float32).tobytes()).hexdigest() == meta["image_sha256"]
    assert img.min() < 0.0 and img.max() > 1.0  # the originals do not clip after resampling
    for ours, theirs in ((msk, ref["mask"] > 0), (sg, ref["seg"] > 0)):
        dice = 2 * (ours & theirs).sum() / (ours.sum() + theirs.sum())
        assert dice == 1.0 and np.array_equal(ours, theirs)
    # voxel-centre aligned 2 mm grid, as torchio's Resample; our affine composes the file's
    np.testing.assert_allclose(pre.output_affine(image.affine, image.data.shape, image.spacing), ref["affine"])
    assert pre.output_shape(image.data.shape, image.spacing) == (24, 24, 15)


def test_zoom_pipeline_differs_from_originals(reference, subject_files):
    """The earlier corner-aligned zoom pipeline, kept behind `pipeline: zoom`, is not theirs."""
    ref, _ = reference
    image, mask, seg = load_subject(subject_files["image"], subject_files["mask"], subject_files["seg"])
    params = dict(PIPELINE, pipeline="zoom", target_spacing=None, target_shape=[24, 24, 15])
    img, _, sg = VolumePreprocessor(**params)(image.data, mask, seg, spacing=image.spacing)
    theirs = ref["seg"] > 0
    dice = 2 * (sg & theirs).sum() / (sg.sum() + theirs.sum())
    assert dice < 1.0 and np.abs(img - ref["image"]).max() > 1e-3


@pytest.mark.parametrize("seed", SEEDS)
def test_augmentation_draws_and_output_equal_originals(reference, seed, monkeypatch):
    """Same torch seed -> the originals' get_augment(aug_intensity) output, on the 2 mm volume."""
    ref, meta = reference
    monkeypatch.setattr(augmentation_module, "item_seed", lambda s, e, i: seed)
    aug = build_part(Augmentation, AUGMENTATION, "augmentation")
    image, mask = torch.from_numpy(ref["image"]), torch.from_numpy(ref["mask"]).float()
    out, out_mask = aug(image, mask, 0, 0, 0, spacing=(2.0, 2.0, 2.0))
    # torchio's RandomGhosting goes through an FFT whose last bits depend on the CPU
    # (1.8e-7 apart between two of our machines, on values of order 1): float32 noise
    np.testing.assert_allclose(out.numpy(), ref[f"aug_seed{seed}"], rtol=0, atol=1e-6)
    assert torch.equal(out_mask, mask)
    # the parameters as torchio drew them (their history lists the preprocessing first)
    theirs = meta["history"][str(seed)][4:]
    torch.manual_seed(seed)
    grid = np.diag([2.0, 2.0, 2.0, 1.0])
    subject = aug.transform(is_2d=False)(tio.Subject(image=tio.ScalarImage(tensor=image[None], affine=grid)))
    ours = [str(t).replace("'image'", "'vol'") for t in subject.get_applied_transforms()]
    assert ours == theirs  # e.g. "Gamma(gamma={'vol': [0.94...]})", same numbers


def test_augmentation_pipeline_is_the_originals_policy():
    steps = build_part(Augmentation, AUGMENTATION, "augmentation").transform(is_2d=False).transforms
    assert [type(t).__name__ for t in steps] == ["RandomGamma", "RandomBiasField", "RandomBlur", "RandomGhosting"]
    assert [t.probability for t in steps] == [0.5, 0.25, 0.25, 0.5]


VOLUME_PAPER_CONFIGS = ["projects/DDPM/configs/ddpm_paper.yaml", "projects/cDDPM/configs/cddpm_paper.yaml"]


def _loaders(config: dict):
    yield "trainer.data_loader", config["trainer"]["data_loader"]
    for name, task in (config.get("downstream_tasks") or {}).items():
        if isinstance(task, dict) and "data_loader" in task:
            yield f"downstream_tasks.{name}.data_loader", task["data_loader"]


@pytest.mark.parametrize("path", VOLUME_PAPER_CONFIGS + ["projects/cDDPM/configs/spark_pretrain_paper.yaml"])
def test_paper_configs_use_the_originals_pipeline(path):
    """Every volume loader of the paper configs: CurvatureFlow, torchio crop/pad 192 x 192 x 100,
    1 / 99 percentiles in the brain, 2 mm -> 96 x 96 x 50; training on all slices, drop_last,
    validation drawn as training (the best checkpoint is chosen on it)."""
    from core.config.configurator import load_config

    root = Path(__file__).resolve().parents[2]
    config = load_config(root / path)
    seen = 0
    for where, loader in _loaders(config):
        params = loader.get("params") or {}
        if "preprocessing" not in params:
            continue
        pre = VolumePreprocessor(**params["preprocessing"])
        assert (pre.pipeline, pre.curvature_flow) == ("torchio", True), where
        assert pre.crop_shape == (192, 192, 100) and pre.percentiles == (1.0, 99.0), where
        assert pre.target_spacing == (2.0, 2.0, 2.0) and pre.target_shape is None, where
        seen += 1
    assert seen >= 1
    train = config["trainer"]["data_loader"]["params"]
    assert (train["slices"]["sampling"], train["slices"]["validation"], train["drop_last"]) == ("all", "as_training", True)
    if path in VOLUME_PAPER_CONFIGS:  # SparK trains without augmentation (issue 9, item 4)
        aug = build_part(Augmentation, train["augmentation"], "augmentation")
        assert train["slices"]["augment_volume"] is True and aug.clip is False
        assert [(type(t).__name__, t.probability) for t in aug.transform(is_2d=False).transforms] == [
            ("RandomGamma", 0.5), ("RandomBiasField", 0.25), ("RandomBlur", 0.25), ("RandomGhosting", 0.5)]
        assert aug == build_part(Augmentation, AUGMENTATION, "augmentation")


def test_paper_geometry_gives_96_96_50():
    pre = VolumePreprocessor(crop_shape=[192, 192, 100], percentiles=[1, 99], target_shape=None,
                             target_spacing=[2, 2, 2], pipeline="torchio")
    assert pre.output_shape((240, 240, 155)) == (96, 96, 50)  # SRI24 grid, as the originals' data


LPS_AFFINE = np.diag([-1.0, -1.0, 1.0, 1.0]) + np.array([[0, 0, 0, 50.0], [0, 0, 0, 44.0], [0, 0, 0, -10.0], [0, 0, 0, 0]])


def _write_phantom(folder: Path, affine: np.ndarray) -> dict[str, Path]:
    """The phantom at (51, 45, 34) (odd crop margins in x and y): image, mask, seg with `affine`."""
    paths = {}
    for name, arr in zip(("image", "mask", "seg"), phantom((51, 45, 34))):
        paths[name] = folder / f"lps_{name}.nii.gz"
        nib.save(nib.Nifti1Image(arr, affine), str(paths[name]))
    return paths


@pytest.fixture(scope="module")
def lps_files(tmp_path_factory):
    """The phantom stored LPS."""
    return _write_phantom(tmp_path_factory.mktemp("lps"), LPS_AFFINE)


def _run(paths, orientation):
    from data.csv_splits import SplitRow
    from data.volume_dataset import load_volume

    row = SplitRow("lps", float("nan"), 1, paths["image"], paths["mask"], paths["seg"])
    volume = load_volume(row, VolumePreprocessor(**PIPELINE, orientation=orientation))
    return volume.image.numpy(), volume.mask.numpy(), volume.seg.numpy(), volume.affine


def _dice(a, b):
    return 2 * (a & b).sum() / (a.sum() + b.sum())


def test_lps_file_as_stored_equals_the_originals_and_ras_is_mirrored(lps_files):
    """Issue 18: the originals read the voxel order as stored (volume_pipeline_lps.npz, recorded
    from their Eval on this LPS file); `orientation: as_stored` (the paper configs) gives their
    volume bitwise; `ras` (ours) mirrors x and y, and the odd crop margins then fall on the other
    side, so even flipped back the volumes differ at the edges."""
    ref = dict(np.load(FIXTURES / "volume_pipeline_lps.npz"))
    img, msk, sg, affine = _run(lps_files, "as_stored")
    np.testing.assert_array_equal(img, ref["image"])
    assert np.array_equal(msk, ref["mask"]) and np.array_equal(sg, ref["seg"])
    assert nib.aff2axcodes(affine) == ("L", "P", "S")  # maps are written in the file's own frame
    ras_img, ras_msk, ras_sg, ras_affine = _run(lps_files, "ras")
    assert nib.aff2axcodes(ras_affine) == ("R", "A", "S")
    back = (slice(None, None, -1), slice(None, None, -1))
    assert not np.array_equal(ras_img[back], ref["image"])
    assert 0.9 < _dice(ras_msk[back], ref["mask"]) < 1.0 and _dice(ras_sg[back], ref["seg"]) < 1.0


def test_as_stored_refuses_labels_stored_in_another_voxel_order(lps_files, tmp_path):
    """An LPS image whose mask and seg are stored RAS (the same world content, mirrored voxels): read
    as stored, voxel i of one is not voxel i of the other, and the labels would silently fall on the
    mirrored side (seg Dice 0 on the phantom); `as_stored` refuses it in one line, `ras` aligns them."""
    from dl_utils.errors import UserInputError

    image = nib.load(str(lps_files["image"]))
    ras = nib.as_closest_canonical(image).affine
    mixed = {"image": lps_files["image"]}
    for role in ("mask", "seg"):
        stored = nib.load(str(lps_files[role]))
        mixed[role] = tmp_path / f"ras_{role}.nii.gz"
        nib.save(nib.Nifti1Image(np.asarray(nib.as_closest_canonical(stored).dataobj), ras), str(mixed[role]))
    with pytest.raises(UserInputError, match=r"ras_mask.nii.gz is stored in RAS voxel order but its image .* in LPS"):
        _run(mixed, "as_stored")
    ras_img, ras_msk, ras_sg, _ = _run(mixed, "ras")
    ref_img, ref_msk, ref_sg, _ = _run(lps_files, "ras")
    np.testing.assert_array_equal(ras_msk, ref_msk)
    np.testing.assert_array_equal(ras_sg, ref_sg)


def test_paper_configs_read_volumes_as_stored():
    """Every volume loader of the paper configs reads files in their stored voxel order, as the originals."""
    from core.config.configurator import load_config

    root = Path(__file__).resolve().parents[2]
    for path in VOLUME_PAPER_CONFIGS + ["projects/cDDPM/configs/spark_pretrain_paper.yaml", "projects/common/paper_evaluation.yaml"]:
        config = load_config(root / path)
        loaders = list(_loaders(config)) if "trainer" in config else []
        for where, loader in loaders:
            params = loader.get("params") or {}
            if "preprocessing" in params:
                assert VolumePreprocessor(**params["preprocessing"]).orientation == "as_stored", (path, where)


SPACED_LPS_AFFINE = np.diag([-1.5, -1.25, 2.5, 1.0]) + np.array(
    [[0, 0, 0, 50.0], [0, 0, 0, 44.0], [0, 0, 0, -10.0], [0, 0, 0, 0]])


@pytest.fixture(scope="module")
def spaced_lps_files(tmp_path_factory):
    """The phantom stored LPS with 1.5 x 1.25 x 2.5 mm voxels."""
    return _write_phantom(tmp_path_factory.mktemp("lps_spaced"), SPACED_LPS_AFFINE)


def _load(paths, **params):
    from data.csv_splits import SplitRow
    from data.volume_dataset import load_volume

    row = SplitRow("lps", float("nan"), 1, paths["image"], paths["mask"], paths["seg"])
    return load_volume(row, VolumePreprocessor(**{**PIPELINE, "orientation": "as_stored", **params}))


def test_non_1mm_lps_file_with_unit_voxels_equals_the_originals(spaced_lps_files):
    """Issue 18: the originals' reader drops the affine, so torchio treats every voxel as 1 mm
    (crop 48 x 48 x 30 voxels, then each axis halved) while CurvatureFlow sees the real spacing;
    `voxel_spacing: unit` gives their volume bitwise (volume_pipeline_lps_spacing.npz, recorded
    from their Eval on this file), and our affine still puts every output voxel where it lies in
    the scan; `header` (ours) resamples to 2 mm of the scan, another grid."""
    ref = dict(np.load(FIXTURES / "volume_pipeline_lps_spacing.npz"))
    meta = json.loads((FIXTURES / "volume_pipeline_lps_spacing.json").read_text())
    volume = _load(spaced_lps_files, voxel_spacing="unit")
    img = volume.image.numpy()
    np.testing.assert_array_equal(img, ref["image"])
    assert hashlib.sha256(img.tobytes()).hexdigest() == meta["image_sha256"]
    assert np.array_equal(volume.mask.numpy(), ref["mask"]) and np.array_equal(volume.seg.numpy(), ref["seg"])
    # their output affine is the output -> input-index map (identity input affine); ours composes the file's
    np.testing.assert_allclose(volume.affine, SPACED_LPS_AFFINE @ np.asarray(meta["their_output_affine"]))
    assert nib.aff2axcodes(volume.affine) == ("L", "P", "S")
    np.testing.assert_allclose(np.linalg.norm(volume.affine[:3, :3], axis=0), [3.0, 2.5, 5.0])  # true voxel size
    assert volume.grid_spacing == (2.0, 2.0, 2.0)  # what their augmentation saw
    # the lesion where the scan has it: world centroids agree to within 1.5 mm (output voxels 3 x 2.5 x 5 mm)
    _, _, lesion = phantom((51, 45, 34))
    world = lambda aff, idx: (aff @ np.c_[idx, np.ones(len(idx))].T)[:3].T.mean(0)  # noqa: E731
    np.testing.assert_allclose(world(volume.affine, np.argwhere(volume.seg.numpy())),
                               world(SPACED_LPS_AFFINE, np.argwhere(lesion)), atol=1.5)
    header = _load(spaced_lps_files, voxel_spacing="header")
    assert tuple(header.image.shape) == (36, 30, 37) != img.shape
    assert header.grid_spacing == pytest.approx((2.0, 2.0, 2.0))


def test_unit_voxels_are_header_voxels_for_1mm_files(subject_files):
    """For 1 mm files (the papers' data) `unit` and `header` are the same pipeline."""
    image, mask, seg = load_subject(subject_files["image"], subject_files["mask"], subject_files["seg"])
    a, b = (VolumePreprocessor(**PIPELINE, voxel_spacing=v) for v in ("unit", "header"))
    for x, y in zip(a(image.data, mask, seg, spacing=image.spacing), b(image.data, mask, seg, spacing=image.spacing)):
        np.testing.assert_array_equal(x, y)
    np.testing.assert_array_equal(a.output_affine(image.affine, image.data.shape, image.spacing),
                                  b.output_affine(image.affine, image.data.shape, image.spacing))


def test_paper_configs_treat_voxels_as_1mm():
    """Every volume loader of the paper configs uses the originals' identity-affine geometry, so
    volumes of the demo's varied voxel sizes (2.69-2.95 mm, 64 x 64 x 32) all come out 96 x 96 x 50."""
    from core.config.configurator import load_config

    root = Path(__file__).resolve().parents[2]
    for path in VOLUME_PAPER_CONFIGS + ["projects/cDDPM/configs/spark_pretrain_paper.yaml"]:
        config = load_config(root / path)
        for where, loader in _loaders(config):
            params = loader.get("params") or {}
            if "preprocessing" in params:
                pre = VolumePreprocessor(**params["preprocessing"])
                assert pre.voxel_spacing == "unit", (path, where)
                for mm in (1.0, 2.694, 2.953):
                    assert pre.output_shape((64, 64, 32), (mm, mm, mm)) == (96, 96, 50), (path, where, mm)
