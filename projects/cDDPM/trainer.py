"""cDDPM's two training stages: Spark pre-training of the encoder, then the conditioned DDPM.

Both models define `training_loss`, so the base loop serves; these trainers only move
the encoder weights from the first stage to the second.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from core.Trainer import Trainer
from dl_utils.checkpoint import load_checkpoint, save_checkpoint
from dl_utils.errors import UserInputError

LOG = logging.getLogger(__name__)


class SparkTrainer(Trainer):
    """Trains `model_zoo.spark.SparkPretrainer`; afterwards writes the best encoder weights to
    `<run>/checkpoints/encoder_weights.pt` and, if `export_encoder_to` is set, to that path too
    (atomically), for `ConditionalDDPMTrainer(encoder_weights=...)`."""

    def __init__(self, *, export_encoder_to: str | None = None, **kwargs: Any):
        super().__init__(**kwargs)
        self.export_encoder_to = export_encoder_to

    def train(self) -> None:
        super().train()
        if not self.dist.is_main:
            return
        self.model.load_state_dict(self.best_weights)
        state = {"model_weights": self.model.encoder_state_dict(), "epoch": self.best_epoch, "best_val": self.best_val}
        targets = [self.run_dir / "checkpoints" / "encoder_weights.pt"] if self.run_dir else []
        if self.export_encoder_to:
            targets.append(Path(self.export_encoder_to))
        for target in targets:
            save_checkpoint(state, target)
            LOG.info("Spark encoder weights written to %s", target)


class ConditionalDDPMTrainer(Trainer):
    """Trains `model_zoo.diffusion_models.ConditionalDDPM`, starting its encoder from Spark
    weights when `encoder_weights` is given (loaded strictly; a mismatch is an error), from
    scratch otherwise. Resuming a run restores the fine-tuned encoder from the checkpoint."""

    def __init__(self, *, encoder_weights: str | None = None, **kwargs: Any):
        super().__init__(**kwargs)
        self.encoder_weights = encoder_weights
        if encoder_weights:
            path = Path(encoder_weights)
            if not path.is_file():
                raise UserInputError(
                    f"trainer.params.encoder_weights: {path} not found; run projects/cDDPM/configs/spark_pretrain.yaml "
                    "first (it writes this file) or set trainer.params.encoder_weights=null to train the encoder from scratch"
                )
            state = load_checkpoint(path, map_location=self.device)
            try:
                self.model.load_encoder_weights(state["model_weights"])
            except UserInputError as exc:
                raise UserInputError(f"{path}: {exc}") from exc
            LOG.info("condition encoder initialised from %s", path)
        else:
            LOG.info("condition encoder trained from scratch (no encoder_weights given)")
