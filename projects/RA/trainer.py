"""RA trainer: Soft-IntroVAE's alternating encoder/decoder updates plus RA's embedding loss.

Bercea et al., MIDL 2023 (ci-ber/RA), on top of Daniel & Tamar, Soft-IntroVAE, CVPR 2021.

Reductions (as in the original code): reconstruction errors are summed over the pixels of an
image and KL divergences over the latent dimensions, then averaged over the batch; these sums
are multiplied by scale = 1 / (C * H * W) (= 1 / (H * W) for single-channel slices), inside
exp(.) for the expELBO, which is then averaged over the batch; the embedding loss uses
element means (MSE) and per-sample cosine similarities, unscaled.
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Annotated, Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from core.training.trainer import Trainer
from dl_utils.errors import UserInputError
from dl_utils.param_ranges import MAX_EPOCHS, LearningRate, NonNegativeFloat
from dl_utils.param_types import Ge, Le
from projects.RA.losses import embedding_loss, exp_elbo, kl_divergence, reconstruction_error


@contextlib.contextmanager
def frozen(module: nn.Module) -> Iterator[None]:
    """Temporarily set ``requires_grad=False`` on the parameters of ``module`` (restored after)."""
    params = list(module.parameters())
    previous = [p.requires_grad for p in params]
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in zip(params, previous):
            p.requires_grad_(flag)


class RATrainer(Trainer):
    """Two Adam optimisers, ``encoder`` and ``decoder``, updated in turn on every batch.

    Args (paper defaults):
        beta_rec: weight of the reconstruction error.
        beta_kl: weight of the KL divergence of real data.
        beta_neg: weight of the KL divergence inside the expELBO of generated data.
        gamma_r: weight of the decoder's reconstruction error of generated data.
        expelbo_weight: weight of expELBO(rec) + expELBO(fake) in the encoder loss.
        embedding_weight: weight of RA's reversed-embedding loss in the encoder loss.
        encoder_lr, decoder_lr: learning rates of the two optimisers (``optimizer_params`` may
            hold the optimiser's other arguments, not ``lr``).
        vae_epochs: first epochs trained as a plain VAE (one joint step on
            ``scale * (beta_rec * rec error + beta_kl * KL)``), then the introspective RA
            objective; Soft-IntroVAE's ``num_vae`` (Daniel & Tamar). 0 = the published RA,
            which has no such phase; the CPU demo uses it, as a VAE step costs about a
            sixth of an introspective one. Warm-up epochs never become the best model, so
            the evaluated weights are always RA-trained.
        vae_lr: learning rate of both optimisers during the warm-up (None: encoder_lr and
            decoder_lr); the introspective phase then runs at encoder_lr / decoder_lr.
        **kwargs: the base :class:`core.training.trainer.Trainer` arguments (``loss`` is rejected: RA's
            objective is fixed, where the original silently ignored the configured loss).

    The model must offer ``encoder``, ``decoder``, ``latent_dim``, ``encode``, ``decode``,
    ``reparameterize`` and ``reconstruct`` (:class:`model_zoo.ra.RAModel`).
    """

    def __init__(
        self,
        *,
        beta_rec: NonNegativeFloat = 0.5,
        beta_kl: NonNegativeFloat = 1.0,
        beta_neg: NonNegativeFloat = 128.0,
        gamma_r: NonNegativeFloat = 1e-8,
        expelbo_weight: NonNegativeFloat = 0.25,
        embedding_weight: NonNegativeFloat = 0.005,
        encoder_lr: LearningRate = 5e-5,
        decoder_lr: LearningRate = 5e-5,
        vae_epochs: Annotated[int, Ge(0), Le(MAX_EPOCHS)] = 0,
        vae_lr: LearningRate | None = None,
        **kwargs: Any,
    ) -> None:
        self.beta_rec = beta_rec
        self.beta_kl = beta_kl
        self.beta_neg = beta_neg
        self.gamma_r = gamma_r
        self.expelbo_weight = expelbo_weight
        self.embedding_weight = embedding_weight
        self.encoder_lr = encoder_lr
        self.decoder_lr = decoder_lr
        if vae_epochs < 0:
            raise UserInputError(f"trainer.params.vae_epochs: {vae_epochs} must be >= 0")
        self.vae_epochs = vae_epochs
        self.vae_lr = vae_lr
        if kwargs.get("loss") is not None:
            raise UserInputError(
                "trainer.params.loss: RATrainer optimises its own Soft-IntroVAE/RA objective; remove the key"
            )
        if "lr" in (kwargs.get("optimizer_params") or {}):
            raise UserInputError(
                "trainer.params.optimizer_params.lr: RATrainer uses encoder_lr and decoder_lr; "
                "move the value there"
            )
        super().__init__(**kwargs)
        if vae_epochs >= self.nr_epochs:
            raise UserInputError(
                f"trainer.params.vae_epochs: {vae_epochs} warm-up epochs leave none of the {self.nr_epochs} "
                "for RA's introspective training; make it smaller than nr_epochs"
            )

    def build_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """``{"encoder": ..., "decoder": ...}`` with their own learning rates."""
        return {
            "encoder": self.make_optimizer(self.model.encoder.parameters(), lr=self.encoder_lr),
            "decoder": self.make_optimizer(self.model.decoder.parameters(), lr=self.decoder_lr),
        }

    def _expelbo(self, target: Tensor, mu: Tensor, logvar: Tensor, scale: float) -> Tensor:
        """expELBO of a generated batch ``target (B,C,H,W)`` re-encoded as ``mu, logvar``."""
        rec = self.model.decode(self.model.reparameterize(mu, logvar))
        return exp_elbo(
            reconstruction_error(target, rec),
            kl_divergence(mu, logvar),
            scale=scale,
            beta_rec=self.beta_rec,
            beta_neg=self.beta_neg,
        )

    def _elbo_loss(self, rec_error: Tensor, kl: Tensor, scale: float) -> Tensor:
        """The weighted negative ELBO of real data: the VAE warm-up's whole loss, the first term of the encoder's."""
        return scale * (self.beta_rec * rec_error + self.beta_kl * kl)

    def encoder_losses(self, x: Tensor, noise: Tensor, scale: float) -> dict[str, Tensor]:
        """Encoder objective (decoder frozen); ``x (B,C,H,W)``, ``noise (B, z)``.

        Key ``loss_encoder`` is optimised; ``z`` (the sampled latent of ``x``) is reused by
        the decoder step, as in the original.
        """
        model = self.model
        fake = model.decode(noise)
        mu, logvar, features_x = model.encode(x)
        z = model.reparameterize(mu, logvar)
        rec = model.decode(z)
        rec_mu, rec_logvar, features_rec = model.encode(rec.detach())
        fake_mu, fake_logvar, _ = model.encode(fake.detach())
        rec_error = reconstruction_error(x, rec).mean()
        kl_real = kl_divergence(mu, logvar).mean()
        # rec (not detached) is the target of its own re-reconstruction, as in Soft-IntroVAE.
        expelbo_rec = self._expelbo(rec, rec_mu, rec_logvar, scale)
        expelbo_fake = self._expelbo(fake, fake_mu, fake_logvar, scale)
        emb = embedding_loss(features_x, features_rec)
        loss = (
            self._elbo_loss(rec_error, kl_real, scale)
            + self.expelbo_weight * (expelbo_rec + expelbo_fake)
            + self.embedding_weight * emb
        )
        return {
            "loss_encoder": loss,
            "kl_real": kl_real,
            "expelbo_rec": expelbo_rec,
            "expelbo_fake": expelbo_fake,
            "embedding": emb,
            "z": z,
        }

    def decoder_losses(self, x: Tensor, z: Tensor, noise: Tensor, scale: float) -> dict[str, Tensor]:
        """Decoder objective (encoder frozen); ``x (B,C,H,W)``, ``z``/``noise (B, z)``."""
        model = self.model
        fake = model.decode(noise)
        rec = model.decode(z.detach())
        rec_mu, rec_logvar, _ = model.encode(rec)
        fake_mu, fake_logvar, _ = model.encode(fake)
        rec_rec = model.decode(model.reparameterize(rec_mu, rec_logvar).detach())
        rec_fake = model.decode(model.reparameterize(fake_mu, fake_logvar).detach())
        rec_error = reconstruction_error(x, rec).mean()
        kl_rec = kl_divergence(rec_mu, rec_logvar).mean()
        kl_fake = kl_divergence(fake_mu, fake_logvar).mean()
        rerec_error = (
            reconstruction_error(rec.detach(), rec_rec).mean()
            + reconstruction_error(fake.detach(), rec_fake).mean()
        )
        # Means of the two KL terms and of the two re-reconstruction errors.
        loss = scale * (
            self.beta_rec * rec_error
            + self.beta_kl * (kl_rec + kl_fake) / 2
            + self.gamma_r * self.beta_rec * rerec_error / 2
        )
        return {
            "loss_decoder": loss,
            "mse": rec_error * scale,
            "kl_rec": kl_rec,
            "kl_fake": kl_fake,
        }

    def in_warmup(self) -> bool:
        """Whether the current epoch belongs to the plain-VAE warm-up."""
        return self.epoch < self.vae_epochs

    def selects_best(self, epoch: int) -> bool:
        """Only introspective (RA) epochs may become the best model."""
        return epoch >= self.vae_epochs

    def _set_phase_lr(self) -> None:
        """The warm-up's rate during the warm-up, each optimiser's own after it."""
        for name, own in (("encoder", self.encoder_lr), ("decoder", self.decoder_lr)):
            lr = self.vae_lr if (self.in_warmup() and self.vae_lr is not None) else own
            for group in self.optimizers[name].param_groups:
                group["lr"] = lr

    def vae_losses(self, x: Tensor, scale: float) -> dict[str, Tensor]:
        """Plain VAE objective of ``x (B,C,H,W)`` (the warm-up phase), optimised by both optimisers."""
        model = self.model
        mu, logvar, _ = model.encode(x)
        rec = model.decode(model.reparameterize(mu, logvar))
        rec_error = reconstruction_error(x, rec).mean()
        kl_real = kl_divergence(mu, logvar).mean()
        return {
            "loss_vae": self._elbo_loss(rec_error, kl_real, scale),
            "mse": rec_error * scale,
            "kl_real": kl_real,
        }

    def run_step(self, batch: dict[str, Tensor]) -> dict[str, float]:
        """Encoder update, then decoder update, on ``batch["image"] (B, C, H, W)`` in [0, 1]
        (one joint VAE update during the first ``vae_epochs``).

        Returns floats; ``loss`` is the per-pixel MSE of the decoder step's reconstruction.
        """
        x = batch["image"]
        scale = 1.0 / x[0].numel()
        self._set_phase_lr()
        if self.in_warmup():
            with self.amp_context():
                vae = self.vae_losses(x, scale)
            self.optimize(("encoder", "decoder"), vae["loss_vae"])
            out = {k: float(v.detach()) for k, v in vae.items()}
            out["loss"] = out["mse"]
            return out
        noise = torch.randn(x.shape[0], self.model.latent_dim, device=x.device, dtype=x.dtype)
        with frozen(self.model.decoder), self.amp_context():
            enc = self.encoder_losses(x, noise, scale)
        self.optimize("encoder", enc["loss_encoder"])
        with frozen(self.model.encoder), self.amp_context():
            dec = self.decoder_losses(x, enc["z"], noise, scale)
        self.optimize("decoder", dec["loss_decoder"])
        logged = {k: v for k, v in {**enc, **dec}.items() if k != "z"}
        out = {k: float(v.detach()) for k, v in logged.items()}
        out["loss"] = out["mse"]
        return out

    @torch.no_grad()
    def validation_step(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        """``{"loss": MSE(x, reconstruct(x))}`` with the deterministic mean-latent reconstruction."""
        x = batch["image"]
        with self.amp_context():
            rec = self.model.reconstruct(x)[0]
        return {"loss": F.mse_loss(rec.float(), x.float())}
