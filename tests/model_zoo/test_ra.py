"""RAModel: shapes at several sizes, feature maps, deterministic reconstruction, size checks."""
import pytest
import torch

from model_zoo.ra import RAModel

SMALL = (8, 16, 16, 32, 32)  # the paper's 5 stages with tiny widths


@pytest.mark.parametrize("size", [32, 64, 128])
def test_shapes(size: int) -> None:
    torch.manual_seed(0)
    model = RAModel(image_size=size, channels=SMALL, latent_dim=16).eval()
    x = torch.rand(2, 1, size, size)
    mu, logvar, features = model.encode(x)
    assert mu.shape == logvar.shape == (2, 16)
    assert len(features) == 5
    for level, (f, c) in enumerate(zip(features, SMALL), start=1):
        assert f.shape == (2, c, size // 2**level, size // 2**level)
    rec = model.decode(mu)
    assert rec.shape == x.shape
    assert rec.min() >= 0 and rec.max() <= 1  # sigmoid output
    out = model(x)
    assert out.rec.shape == x.shape and out.z.shape == (2, 16)


def test_paper_size_bottleneck() -> None:
    """Default (paper) model at 128 px: 4 x 4 x 512 bottleneck, 5 maps, z = 128."""
    model = RAModel().eval()
    with torch.no_grad():
        mu, _, features = model.encode(torch.rand(1, 1, 128, 128))
    assert mu.shape == (1, 128)
    assert [f.shape[1:] for f in features] == [
        (64, 64, 64), (128, 32, 32), (256, 16, 16), (512, 8, 8), (512, 4, 4)
    ]
    assert model.decoder.fc[0].out_features == 512 * 4 * 4


def test_reconstruct_is_deterministic_mean_latent() -> None:
    torch.manual_seed(0)
    model = RAModel(image_size=32, channels=SMALL, latent_dim=8).eval()
    x = torch.rand(3, 1, 32, 32)
    with torch.no_grad():
        torch.manual_seed(1)
        a = model.reconstruct(x, num_samples=2)
        torch.manual_seed(2)
        b = model.reconstruct(x, num_samples=2)
        mu, _, _ = model.encode(x)
        expected = model.decode(mu)
    assert a.shape == (2, 3, 1, 32, 32)
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    torch.testing.assert_close(a[0], expected)
    torch.testing.assert_close(a[1], expected)


def test_reparameterize_uses_generator() -> None:
    mu, logvar = torch.zeros(4, 3), torch.zeros(4, 3)
    z1 = RAModel.reparameterize(mu, logvar, torch.Generator().manual_seed(5))
    z2 = RAModel.reparameterize(mu, logvar, torch.Generator().manual_seed(5))
    torch.testing.assert_close(z1, z2)
    assert not torch.equal(z1, mu)


@pytest.mark.parametrize("size", [100, 16])
def test_bad_image_size_names_sizes(size: int) -> None:
    with pytest.raises(ValueError, match=f"image_size={size}.*32"):
        RAModel(image_size=size)


def test_wrong_input_size_raises() -> None:
    model = RAModel(image_size=32, channels=SMALL, latent_dim=8)
    with pytest.raises(ValueError, match="expects"):
        model.encode(torch.rand(1, 1, 64, 64))
