"""RA losses against hand computations; RATrainer's alternating step and a one-epoch run."""
import math

import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from core.training.trainer import TrainingContext
from dl_utils.errors import UserInputError
from model_zoo.ra import RAModel
from projects.RA.losses import embedding_loss, exp_elbo, kl_divergence, reconstruction_error
from projects.RA.trainer import RATrainer, frozen

SMALL = (4, 8, 8, 8, 8)


# ---- losses --------------------------------------------------------------------------
def test_kl_divergence_hand_values() -> None:
    assert torch.equal(kl_divergence(torch.zeros(3, 5), torch.zeros(3, 5)), torch.zeros(3))
    # mu = 1 in 2 dims, unit variance: 0.5 * (1 + 1) = 1
    torch.testing.assert_close(kl_divergence(torch.ones(1, 2), torch.zeros(1, 2)), torch.tensor([1.0]))
    # variance 2, mu = 0, one dim: -0.5 * (1 + ln 2 - 2) = 0.5 * (1 - ln 2)
    logvar = torch.full((1, 1), math.log(2.0))
    torch.testing.assert_close(kl_divergence(torch.zeros(1, 1), logvar), torch.tensor([0.5 * (1 - math.log(2.0))]))


def test_reconstruction_error_sums_per_sample() -> None:
    target = torch.zeros(2, 1, 2, 2)
    rec = torch.tensor([[[[1.0, 1.0], [0.0, 0.0]]], [[[2.0, 0.0], [0.0, 0.0]]]])
    torch.testing.assert_close(reconstruction_error(target, rec), torch.tensor([2.0, 4.0]))


def test_exp_elbo_hand_values() -> None:
    zeros = torch.zeros(4)
    torch.testing.assert_close(exp_elbo(zeros, zeros, scale=0.1, beta_rec=0.5, beta_neg=128.0), torch.tensor(1.0))
    # sample 1: 2 * 0.5 * (0.5 * 2 + 1 * 0) = 1; sample 2: 2 * 0.5 * (0.5 * 0 + 1 * 1) = 1 -> mean e^-1
    value = exp_elbo(torch.tensor([2.0, 0.0]), torch.tensor([0.0, 1.0]), scale=0.5, beta_rec=0.5, beta_neg=1.0)
    torch.testing.assert_close(value, torch.tensor(math.exp(-1.0)))


def test_embedding_loss_hand_values() -> None:
    g = torch.Generator().manual_seed(0)
    feats = [torch.rand(2, 3, 4, 4, generator=g), torch.rand(2, 5, 2, 2, generator=g)]
    assert embedding_loss(feats, [f.clone() for f in feats]).abs() < 1e-6
    # b = -a with a = 1: MSE = 4 -> 0.5 * 4 = 2, cosine = -1 -> 1 - (-1) = 2; two scales -> 8
    ones = [torch.ones(2, 3, 4, 4), torch.ones(2, 1, 2, 2)]
    torch.testing.assert_close(embedding_loss(ones, [-f for f in ones]), torch.tensor(8.0))
    with pytest.raises(ValueError):
        embedding_loss(ones, ones[:1])


# ---- trainer -------------------------------------------------------------------------
def _trainer(**kwargs) -> RATrainer:
    torch.manual_seed(0)
    model = RAModel(image_size=32, channels=SMALL, latent_dim=8)
    context = TrainingContext(model=model, data_module=kwargs.pop("data_module", None), device=torch.device("cpu"))
    return RATrainer(context=context, progress=False, **kwargs)


def _batch(n: int = 4) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return {"image": torch.rand(n, 1, 32, 32, generator=g), "mask": torch.ones(n, 1, 32, 32)}


def test_optimizers_and_weights() -> None:
    trainer = _trainer(encoder_lr=1e-3, decoder_lr=2e-3)
    assert set(trainer.optimizers) == {"encoder", "decoder"}
    assert trainer.optimizers["encoder"].param_groups[0]["lr"] == 1e-3
    assert trainer.optimizers["decoder"].param_groups[0]["lr"] == 2e-3
    assert (trainer.beta_rec, trainer.beta_kl, trainer.beta_neg, trainer.gamma_r) == (0.5, 1.0, 128.0, 1e-8)
    assert (trainer.expelbo_weight, trainer.embedding_weight) == (0.25, 0.005)


@pytest.mark.parametrize("kwargs", [{"loss": torch.nn.functional.l1_loss}, {"optimizer_params": {"lr": 1e-3}}])
def test_rejects_ignored_settings(kwargs) -> None:
    with pytest.raises(UserInputError):
        _trainer(**kwargs)


def test_run_step_updates_encoder_and_decoder() -> None:
    trainer = _trainer(encoder_lr=1e-3, decoder_lr=1e-3)
    model = trainer.model.train()
    enc_before = [p.detach().clone() for p in model.encoder.parameters()]
    dec_before = [p.detach().clone() for p in model.decoder.parameters()]
    losses = trainer.run_step(_batch())
    expected = {"loss", "loss_encoder", "loss_decoder", "mse", "kl_real", "kl_rec", "kl_fake",
                "expelbo_rec", "expelbo_fake", "embedding"}
    assert expected <= set(losses)
    assert all(isinstance(v, float) and math.isfinite(v) for v in losses.values())
    assert any(not torch.equal(a, b) for a, b in zip(enc_before, model.encoder.parameters()))
    assert any(not torch.equal(a, b) for a, b in zip(dec_before, model.decoder.parameters()))
    assert all(p.requires_grad for p in model.parameters())  # freezing is undone


def test_frozen_restores_flags() -> None:
    layer = torch.nn.Linear(2, 2)
    layer.bias.requires_grad_(False)
    with frozen(layer):
        assert not any(p.requires_grad for p in layer.parameters())
    assert layer.weight.requires_grad and not layer.bias.requires_grad


def test_validation_step_is_mean_latent_mse() -> None:
    trainer = _trainer()
    model = trainer.model.eval()
    batch = _batch()
    loss = trainer.validation_step(batch)["loss"]
    with torch.no_grad():
        mu, _, _ = model.encode(batch["image"])
        expected = F.mse_loss(model.decode(mu), batch["image"])
    torch.testing.assert_close(loss, expected)


class _Slices(Dataset):
    def __init__(self, n: int) -> None:
        self.images = torch.rand(n, 1, 32, 32, generator=torch.Generator().manual_seed(2))

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"image": self.images[i], "mask": torch.ones(1, 32, 32)}


class _DataModule:
    batch_size, num_workers, drop_last = 2, 0, False

    def train_dataset(self) -> Dataset:
        return _Slices(4)

    def val_dataset(self) -> Dataset:
        return _Slices(2)


def test_one_epoch_through_base_loop() -> None:
    trainer = _trainer(data_module=_DataModule(), nr_epochs=1)
    trainer.train()
    record = trainer.history[0]
    assert math.isfinite(record["train_loss_encoder"]) and math.isfinite(record["val_loss"])
    assert trainer.best_weights is not None


# ---- VAE warm-up (Soft-IntroVAE's num_vae) -------------------------------------------
def test_warmup_step_is_one_joint_vae_update_at_the_warmup_rate() -> None:
    trainer = _trainer(encoder_lr=1e-4, decoder_lr=2e-4, vae_epochs=1, vae_lr=1e-3)
    model = trainer.model.train()
    batch = _batch()
    reference = RAModel(image_size=32, channels=SMALL, latent_dim=8)
    reference.load_state_dict(model.state_dict())
    reference.train()
    torch.manual_seed(5)
    losses = trainer.run_step(batch)
    assert set(losses) == {"loss", "loss_vae", "mse", "kl_real"}
    assert all(g["lr"] == 1e-3 for o in trainer.optimizers.values() for g in o.param_groups)
    # the same objective by hand, one Adam step over all parameters
    torch.manual_seed(5)
    x = batch["image"]
    mu, logvar, _ = reference.encode(x)
    rec = reference.decode(reference.reparameterize(mu, logvar))
    scale = 1.0 / x[0].numel()
    loss = scale * (0.5 * ((rec - x) ** 2).flatten(1).sum(1).mean() + kl_divergence(mu, logvar).mean())
    torch.testing.assert_close(torch.tensor(losses["loss_vae"]), loss.detach())
    optimizer = torch.optim.Adam(reference.parameters(), lr=1e-3)
    loss.backward()
    optimizer.step()
    for ours, theirs in zip(model.parameters(), reference.parameters()):
        torch.testing.assert_close(ours, theirs)
    trainer.epoch = 1  # after the warm-up: the introspective objective at each optimiser's own rate
    assert "loss_encoder" in trainer.run_step(batch)
    assert trainer.optimizers["encoder"].param_groups[0]["lr"] == 1e-4
    assert trainer.optimizers["decoder"].param_groups[0]["lr"] == 2e-4


def test_warmup_epochs_never_become_the_best_model() -> None:
    trainer = _trainer(data_module=_DataModule(), nr_epochs=3, vae_epochs=2, vae_lr=1e-3)
    trainer.train()
    assert "train_loss_vae" in trainer.history[0] and "train_loss_encoder" in trainer.history[2]
    assert trainer.best_epoch == 2


@pytest.mark.parametrize("vae_epochs", [-1, 100])
def test_warmup_outside_the_epochs_is_refused(vae_epochs: int) -> None:
    with pytest.raises(UserInputError, match="vae_epochs"):
        _trainer(vae_epochs=vae_epochs)
