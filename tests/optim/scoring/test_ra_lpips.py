"""RAPerceptualScorer: shapes, mask, identity, missing weights, loading, and a per-slice reference."""
import hashlib
from pathlib import Path

import lpips
import numpy as np
import pytest
import torch
import torchvision
from scipy.ndimage import gaussian_filter
from skimage.exposure import equalize_adapthist

from dl_utils.checkpoint import file_sha256
from dl_utils.errors import UserInputError
from optim.scoring.ra_lpips import (
    BACKBONE_FILE,
    BACKBONE_SHA256,
    BACKBONE_URL,
    RAPerceptualScorer,
    packaged_linear_layers_path,
)

H, W, D = 32, 32, 3


@pytest.fixture
def hub_dir(tmp_path: Path):
    """Point torch hub at an empty temporary directory; restore it afterwards."""
    old = torch.hub.get_dir()
    torch.hub.set_dir(str(tmp_path))
    yield tmp_path
    torch.hub.set_dir(old)


@pytest.fixture(scope="module")
def scorer() -> RAPerceptualScorer:
    return RAPerceptualScorer(backbone="random")


def _volume(seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(H, W, D, generator=g)
    recs = (x + 0.3 * torch.rand(1, H, W, D, generator=g)).clamp(0, 1)
    mask = torch.zeros(H, W, D, dtype=torch.bool)
    mask[4:28, 6:26] = True
    return x, recs, mask


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_shape_and_zero_outside_mask(scorer: RAPerceptualScorer, dtype: torch.dtype) -> None:
    x, recs, mask = _volume(0)
    amap = scorer(x.to(dtype), recs.to(dtype), mask)
    assert amap.shape == (H, W, D) and amap.dtype == dtype
    assert torch.isfinite(amap).all()
    assert (amap[~mask] == 0).all()
    assert amap[mask].max() > 0
    assert scorer.uses_random_backbone


def test_identical_input_gives_zero(scorer: RAPerceptualScorer) -> None:
    x, _, mask = _volume(1)
    amap = scorer(x, x[None].clone(), mask)
    assert amap.abs().max() < 1e-6


def test_inputs_not_modified(scorer: RAPerceptualScorer) -> None:
    x, recs, mask = _volume(2)
    x = x * 1.5  # out-of-range input is clamped, not an error
    x0, recs0, mask0 = x.clone(), recs.clone(), mask.clone()
    assert torch.isfinite(scorer(x, recs, mask)).all()
    assert torch.equal(x, x0) and torch.equal(recs, recs0) and torch.equal(mask, mask0)


def test_matches_per_slice_reference(scorer: RAPerceptualScorer) -> None:
    """Reference: the original evaluator's steps on one (1, 1, H, W) slice at a time
    (lpips on 1-channel input broadcast to RGB, scipy gaussian_filter sigma 2, skimage CLAHE)."""
    x, recs, mask = _volume(3)
    amap = scorer(x, recs, mask)
    net = scorer.lpips_net(torch.device("cpu"))

    def saliency(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        d = net(torch.from_numpy(a)[None, None], torch.from_numpy(b)[None, None], normalize=True)
        return gaussian_filter(d.numpy(), sigma=2)[0, 0]

    for k in range(D):
        xs, rs = x[..., k].numpy(), recs[0, ..., k].numpy()
        xe = equalize_adapthist(xs).astype(np.float32)
        re = equalize_adapthist(rs).astype(np.float32)
        ref = np.abs(re - xe) * saliency(xs, rs) * saliency(xe, re) * mask[..., k].numpy()
        np.testing.assert_allclose(amap[..., k].numpy(), ref, rtol=1e-4, atol=1e-7)


def test_missing_backbone_file_raises(hub_dir: Path) -> None:
    x, recs, mask = _volume(0)
    with pytest.raises(UserInputError) as info:
        RAPerceptualScorer()(x, recs, mask)
    message = str(info.value)
    assert BACKBONE_FILE in message and str(hub_dir / "checkpoints") in message
    assert "\n" not in message


def test_loads_backbone_from_hub_dir(hub_dir: Path) -> None:
    """A torchvision-format file in <hub>/checkpoints is loaded into LPIPS's trunk."""
    torch.manual_seed(0)
    reference = torchvision.models.squeezenet1_1()
    (hub_dir / "checkpoints").mkdir()
    torch.save(reference.state_dict(), hub_dir / "checkpoints" / BACKBONE_FILE)
    # random weights stand in for torchvision's file (not shipped): the check expects their hash
    scorer = RAPerceptualScorer(backbone_sha256=file_sha256(hub_dir / "checkpoints" / BACKBONE_FILE))
    assert not scorer.uses_random_backbone
    net = scorer.lpips_net(torch.device("cpu"))
    torch.testing.assert_close(net.net.slice1[0].weight, reference.features[0].weight)
    torch.testing.assert_close(getattr(net.net.slice7, "12").expand3x3.weight, reference.features[12].expand3x3.weight)
    x, recs, mask = _volume(0)
    assert torch.isfinite(scorer(x, recs, mask)).all()


def test_backbone_weights_param_and_bad_file(tmp_path: Path) -> None:
    bad = tmp_path / "other.pth"
    torch.save({"features.0.weight": torch.zeros(1)}, bad)
    with pytest.raises(UserInputError, match="SqueezeNet"):
        RAPerceptualScorer(backbone_weights=str(bad), backbone_sha256=None).lpips_net(torch.device("cpu"))


def test_a_squeezenet_file_other_than_torchvisions_is_refused_by_its_hash(hub_dir: Path) -> None:
    """Any SqueezeNet 1.1 state dict would load; only torchvision's file gives the paper's maps."""
    path = hub_dir / "checkpoints" / BACKBONE_FILE
    path.parent.mkdir()
    torch.save(torchvision.models.squeezenet1_1().state_dict(), path)
    found = hashlib.sha256(path.read_bytes()).hexdigest()
    assert file_sha256(path) == found
    for scorer in (RAPerceptualScorer(), RAPerceptualScorer(backbone_weights=str(path))):
        with pytest.raises(UserInputError) as info:
            scorer.check_available()  # before any run output
        message = str(info.value)
        assert str(path) in message and BACKBONE_SHA256 in message and found in message and BACKBONE_URL in message
        assert "\n" not in message
    assert "backbone_sha256" in message  # a named file: the opt-out is offered


def test_skipping_the_hash_check_needs_a_named_file(tmp_path: Path) -> None:
    with pytest.raises(UserInputError, match="backbone_weights"):
        RAPerceptualScorer(backbone_sha256=None)
    own = tmp_path / "my_squeezenet.pth"
    torch.manual_seed(1)
    reference = torchvision.models.squeezenet1_1()
    torch.save(reference.state_dict(), own)
    net = RAPerceptualScorer(backbone_weights=str(own), backbone_sha256=None).lpips_net(torch.device("cpu"))
    torch.testing.assert_close(net.net.slice1[0].weight, reference.features[0].weight)


def test_random_backbone_is_reproducible_and_keeps_rng() -> None:
    torch.manual_seed(7)
    before = torch.get_rng_state()
    a = RAPerceptualScorer(backbone="random").lpips_net(torch.device("cpu"))
    assert torch.equal(torch.get_rng_state(), before)
    b = RAPerceptualScorer(backbone="random").lpips_net(torch.device("cpu"))
    torch.testing.assert_close(a.net.slice1[0].weight, b.net.slice1[0].weight)
    # the linear layers come from the lpips package, not from the random init
    packaged = lpips.LPIPS(net="squeeze", pretrained=True, pnet_rand=True, verbose=False)
    torch.testing.assert_close(a.lin0.model[1].weight, packaged.lin0.model[1].weight)


def test_bad_backbone_value() -> None:
    with pytest.raises(ValueError, match="imagenet"):
        RAPerceptualScorer(backbone="vgg")


def test_too_small_slices_raise(scorer: RAPerceptualScorer) -> None:
    x = torch.rand(12, 12, 2)
    with pytest.raises(ValueError, match="at least"):
        scorer(x, x[None], torch.ones(12, 12, 2, dtype=torch.bool))


def test_building_the_network_never_downloads(hub_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Both weight files come from disk; any attempt to fetch one fails the test."""

    def no_download(*args: object, **kwargs: object) -> None:
        raise AssertionError("tried to download weights")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", no_download)
    monkeypatch.setattr(torch.hub, "download_url_to_file", no_download)
    (hub_dir / "checkpoints").mkdir()
    torch.save(torchvision.models.squeezenet1_1().state_dict(), hub_dir / "checkpoints" / BACKBONE_FILE)
    expected = file_sha256(hub_dir / "checkpoints" / BACKBONE_FILE)  # random weights stand in for torchvision's
    for backbone in ("random", "imagenet"):
        net = RAPerceptualScorer(backbone=backbone, backbone_sha256=expected).lpips_net(torch.device("cpu"))
        packaged = torch.load(packaged_linear_layers_path(), map_location="cpu", weights_only=True)
        for key, value in packaged.items():  # the paper's linear layers, not random ones
            assert torch.equal(net.state_dict()[key], value), key
