"""Volume-layout CSVs, VolumeSet and VolumeDataModule."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from data_helpers import brain_phantom, write_nifti, write_volume_csv

from data.csv_splits import read_volume_split
from data.volume import Volume
from data.volume_dataset import Slicing, VolumeDataModule, VolumeSet
from dl_utils.errors import UserInputError

PRE = {"crop_shape": [16, 16, 12], "target_shape": [8, 8, 6], "pipeline": "zoom"}


@pytest.fixture
def root(tmp_path):
    vols = tmp_path / "vols"
    vols.mkdir()
    for i in range(3):
        image, mask = brain_phantom((18, 16, 12), seed=i)
        write_nifti(vols / f"s{i}.nii.gz", image * 30)
        write_nifti(vols / f"s{i}_mask.nii.gz", mask.astype(np.uint8))
        seg = np.zeros(mask.shape, np.uint8)
        seg[6:12, 6:12, 4:8] = 1
        write_nifti(vols / f"s{i}_seg.nii.gz", seg)
    healthy = [{"img_name": f"s{i}", "age": "30" if i else "", "label": "0", "img_path": f"vols/s{i}.nii.gz",
                "mask_path": f"vols/s{i}_mask.nii.gz"} for i in range(2)]
    write_volume_csv(tmp_path / "train.csv", healthy)
    write_volume_csv(tmp_path / "val.csv", healthy[:1])
    write_volume_csv(tmp_path / "test.csv", healthy + [{
        "img_name": "s2", "label": "1", "img_path": "vols/s2.nii.gz", "mask_path": "vols/s2_mask.nii.gz",
        "seg_path": "vols/s2_seg.nii.gz"}])
    return tmp_path


def test_volume_set(root):
    vset = VolumeSet("test.csv", str(root), PRE)
    assert len(vset) == 3
    vol = vset[2]
    assert isinstance(vol, Volume) and vol.name == "s2" and vol.label == 1
    assert vol.image.shape == (8, 8, 6) and vol.image.dtype == torch.float32
    assert vol.mask.dtype == torch.bool and vol.seg is not None and vol.seg.any()
    assert vset[0].seg is None and vol.affine.shape == (4, 4)
    assert 0 <= vol.image.min() and vol.image.max() <= 1


def test_read_split_rows(root):
    rows = read_volume_split("test.csv", root)
    assert np.isnan(rows[0].age) and rows[1].age == 30.0
    assert rows[2].seg_path == root / "vols/s2_seg.nii.gz"


def test_csv_errors(root):
    with pytest.raises(UserInputError, match="missing.csv"):
        read_volume_split("missing.csv", root)
    (root / "nocol.csv").write_text("img_name,label,img_path\nx,0,a.nii\n")
    with pytest.raises(UserInputError, match="nocol.csv.*mask_path"):
        read_volume_split("nocol.csv", root)
    write_volume_csv(root / "empty.csv", [])
    with pytest.raises(UserInputError, match="empty.csv"):
        read_volume_split("empty.csv", root)
    write_volume_csv(root / "noseg.csv", [{"img_name": "a", "label": "1", "img_path": "a", "mask_path": "b"}])
    with pytest.raises(UserInputError, match="noseg.csv.*seg_path"):
        read_volume_split("noseg.csv", root)
    write_volume_csv(root / "badlabel.csv", [{"img_name": "a", "label": "2", "img_path": "a", "mask_path": "b"}])
    with pytest.raises(UserInputError, match="badlabel.csv"):
        read_volume_split("badlabel.csv", root)


def test_csv_errors_name_the_files_own_line(root):
    """Blank lines and empty rows are skipped but counted: the line is the file's (was the row's number + 1)."""
    header = "img_name,age,label,img_path,mask_path,seg_path\n"
    (root / "gaps.csv").write_text(header + "a,,0,a.nii.gz,a_mask.nii.gz,\n\n,,,,,\nb,,x,b.nii.gz,b_mask.nii.gz,\n")
    with pytest.raises(UserInputError, match=r"gaps\.csv line 5: label 'x' must be 0 or 1"):
        read_volume_split("gaps.csv", root)
    (root / "gaps.csv").write_text(header + "\na,,0,vols/s0.nii.gz,vols/s0_mask.nii.gz,\n\nb,,0,vols/s1.nii.gz,vols/s1_mask.nii.gz,\n")
    assert [row.line for row in read_volume_split("gaps.csv", root)] == [3, 5]  # what `uad predict` names a scan by
    (root / "latin1.csv").write_bytes(header.encode() + b"\xe9,,0,a.nii.gz,a_mask.nii.gz,\n")
    with pytest.raises(UserInputError, match=r"latin1\.csv line 2: not a readable UTF-8 CSV .*; a split CSV is UTF-8 text"):
        read_volume_split("latin1.csv", root)


def test_missing_volume_named(root):
    write_volume_csv(root / "bad.csv", [{"img_name": "a", "label": "0", "img_path": "vols/gone.nii.gz",
                                         "mask_path": "vols/s0_mask.nii.gz"}])
    with pytest.raises(UserInputError, match="gone.nii.gz"):
        VolumeSet("bad.csv", str(root), PRE)


def test_data_module_train_and_val(root):
    dm = VolumeDataModule("train.csv", "val.csv", str(root), batch_size=2, samples_per_epoch=5,
                          preprocessing=PRE, augmentation={"ghosting_p": 1.0}, seed=3, slices=Slicing(min_brain_fraction=0.3))
    train = dm.train_dataset()
    assert dm.train_dataset() is train and len(train) == 5
    item = train[4]
    assert set(item) == {"image", "mask"} and item["image"].shape == (1, 8, 8) == item["mask"].shape
    assert item["image"].dtype == torch.float32 and 0 <= item["image"].min() and item["image"].max() <= 1
    assert torch.equal(train[4]["image"], item["image"])  # pure function of (seed, epoch, index)
    batch = torch.utils.data.default_collate([train[i] for i in range(2)])
    assert batch["image"].shape == (2, 1, 8, 8)
    val = dm.val_dataset()
    assert len(val) >= 1 and torch.equal(val[0]["image"], val[0]["image"])
    assert dm.batch_size == 2 and dm.num_workers == 0


def test_epochs_differ(root):
    dm = VolumeDataModule("train.csv", "val.csv", str(root), samples_per_epoch=8, preprocessing=PRE,
                          augmentation={"gamma_p": 1.0}, seed=0)
    train = dm.train_dataset()
    first = torch.stack([train[i]["image"] for i in range(8)])
    train.set_epoch(1)
    second = torch.stack([train[i]["image"] for i in range(8)])
    assert not torch.equal(first, second)
    train.set_epoch(0)
    assert torch.equal(first, torch.stack([train[i]["image"] for i in range(8)]))


def test_unknown_augmentation_key(root):
    with pytest.raises(UserInputError, match="augmentation"):
        VolumeDataModule("train.csv", "val.csv", str(root), augmentation={"gama_p": 0.5})


PAPER_LOADER = {"slices": Slicing(sampling="all", augment_volume=True, validation="as_training"), "drop_last": True,
                "augmentation": {"gamma_p": 0.5, "bias_field_p": 0.25, "blur_p": 0.25, "blur_std_max": 2.0,
                                 "ghosting_p": 0.5, "noise_p": 0.0, "affine_p": 0.0, "clip": False}}


def test_paper_loader_draws_from_all_slices_and_augments_validation(root):
    """The originals: slice uniform over all D, 3D augmentation unclipped, validation drawn as
    training each epoch (so the best checkpoint is chosen on it), drop_last for the Trainer."""
    dm = VolumeDataModule("train.csv", "val.csv", str(root), samples_per_epoch=64, preprocessing=PRE,
                          seed=1, **PAPER_LOADER)
    assert dm.drop_last is True
    train, val = dm.train_dataset(), dm.val_dataset()
    assert all(np.array_equal(s, np.arange(6)) for s in train.slices)  # all 6 slices, also brainless ones
    assert len(val) == 1 and val in train.followers
    first = val[0]["image"]
    assert torch.equal(first, val[0]["image"])  # pure function of (seed, epoch, index)
    changed = False
    for epoch in range(1, 6):
        train.set_epoch(epoch)  # the Trainer calls this on the training set only
        assert val.epoch == epoch
        changed |= not torch.equal(val[0]["image"], first)
    assert changed


def test_volume_augmentation_acts_in_3d_before_slicing(root, monkeypatch):
    params = dict(PAPER_LOADER, augmentation={"blur_p": 1.0, "gamma_p": 0.0, "bias_field_p": 0.0,
                                               "ghosting_p": 0.0, "noise_p": 0.0, "clip": False})
    dm = VolumeDataModule("train.csv", "val.csv", str(root), samples_per_epoch=4, preprocessing=PRE, **params)
    train = dm.train_dataset()
    calls = []
    original = type(train.augmentation).__call__
    monkeypatch.setattr(type(train.augmentation), "__call__",
                        lambda self, image, *a, **k: calls.append(image.shape) or original(self, image, *a, **k))
    assert train[0]["image"].shape == (1, 8, 8)
    assert calls == [(8, 8, 6)]


@pytest.mark.parametrize("key, value", [("sampling", "middle"), ("validation", "random")])
def test_bad_loader_options(root, key, value):
    with pytest.raises(UserInputError, match=key):
        VolumeDataModule("train.csv", "val.csv", str(root), slices=Slicing(**{key: value}))


@pytest.mark.parametrize("drop_last, batches", [(False, 3), (True, 2)])
def test_trainer_reads_drop_last(tmp_path, drop_last, batches):
    """The data module's drop_last reaches the training DataLoader (10 items, batch 4)."""
    from core.training.trainer import Trainer, TrainingContext
    from model_zoo.autoencoder import ConvAutoencoder
    from optim.losses.reconstruction import ReconstructionLoss
    from tests.core.fakes import SyntheticDataModule

    data = SyntheticDataModule(n_train=10, batch_size=4)
    data.drop_last = drop_last
    model = ConvAutoencoder(image_size=16, channels=(8, 16), latent_dim=8, norm_groups=4)
    trainer = Trainer(context=TrainingContext(model=model, data_module=data, device=torch.device("cpu")), nr_epochs=1,
                      optimizer_params={"lr": 1e-3}, loss=ReconstructionLoss("l2"), progress=False)
    trainer.attach_run(tmp_path, None)
    loader, _ = trainer._train_loader()
    assert len(loader) == batches and loader.drop_last is drop_last


def test_uncached_volume_set_equals_the_cached_one_and_still_checks_files_up_front(tmp_path):
    """cache: false keeps no volume in memory, yields the same volumes, and a corrupt file is
    still refused at construction (before a run writes anything)."""
    import pytest as _pytest

    from data.volume_dataset import VolumeSet
    from dl_utils.errors import UserInputError
    from tests.demo_like_data import write_demo_like

    root = write_demo_like(tmp_path / "demo")
    cached, lazy = VolumeSet("splits/test_hyper_spheres.csv", str(root)), VolumeSet("splits/test_hyper_spheres.csv", str(root), cache=False)
    assert lazy._volumes is None and len(lazy) == len(cached) > 0
    for a, b in zip(cached, lazy):
        assert a.name == b.name and torch.equal(a.image, b.image) and torch.equal(a.mask, b.mask) and torch.equal(a.seg, b.seg)
    first = lazy._rows[0].img_path
    first.write_bytes(b"not a nifti")
    with _pytest.raises(UserInputError):
        VolumeSet("splits/test_hyper_spheres.csv", str(root), cache=False)


def test_paths_stay_inside_data_root_textually_and_links_are_followed(root, tmp_path_factory):
    """The documented rule (data/README.md): `..` rows and path-like names are refused; a symbolic
    link inside data_root is followed wherever it points (whoever made it chose the target)."""
    outside = tmp_path_factory.mktemp("store")
    image, mask = brain_phantom((18, 16, 12), seed=5)
    write_nifti(outside / "far.nii.gz", image * 30)
    (root / "vols" / "linked.nii.gz").symlink_to(outside / "far.nii.gz")
    write_volume_csv(root / "linked.csv", [{"img_name": "linked", "label": "0", "img_path": "vols/linked.nii.gz",
                                            "mask_path": "vols/s0_mask.nii.gz"}])
    assert VolumeSet("linked.csv", str(root), PRE)[0].name == "linked"
    write_volume_csv(root / "dotdot.csv", [{"img_name": "x", "label": "0", "img_path": "../store/far.nii.gz",
                                            "mask_path": "vols/s0_mask.nii.gz"}])
    with pytest.raises(UserInputError, match="escapes data_root"):
        read_volume_split("dotdot.csv", root)
    write_volume_csv(root / "name.csv", [{"img_name": "../../x", "label": "0", "img_path": "vols/s0.nii.gz",
                                          "mask_path": "vols/s0_mask.nii.gz"}])
    with pytest.raises(UserInputError, match=r"name.csv line 2: img_name '../../x' holds a path separator"):
        read_volume_split("name.csv", root)


@pytest.mark.parametrize("grid_spacing, expected", [((2.0, 2.0, 2.0), (2.0, 2.0, 2.0)), (None, (5.8, 5.8, 5.8))])
def test_volume_augmentation_works_in_the_grid_spacing(grid_spacing, expected):
    """`voxel_spacing: unit` (the paper pipeline) gives a 2.9 mm scan's output grid 5.8 mm true voxels
    but the 2 mm the originals' augmentation saw (their identity affine): the augmentation gets
    `Volume.grid_spacing`; without one, the affine's voxel size."""
    from data.volume_dataset import SliceTrainDataset

    class Recorder:
        enabled = True

        def __init__(self) -> None:
            self.seen: list = []

        def __call__(self, image, mask, seed, epoch, index, spacing=None):
            self.seen.append(tuple(spacing))
            return image, mask

    volume = Volume("v", torch.rand(8, 8, 4), torch.ones(8, 8, 4, dtype=torch.bool), None, 0,
                    np.diag([5.8, 5.8, 5.8, 1.0]), grid_spacing=grid_spacing)
    aug = Recorder()
    SliceTrainDataset([volume], 1, aug, 0, 0.25, augment_volume=True)[0]
    assert aug.seen == [pytest.approx(expected)]
