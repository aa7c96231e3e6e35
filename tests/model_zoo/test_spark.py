"""SparK pre-training: sparsity of the encoder, masked-patch loss, weight hand-over."""

import pytest
import torch

from dl_utils.errors import UserInputError
from model_zoo.condition_encoder import ConditionEncoder
from model_zoo.spark import SparkPretrainer, mask_at


@pytest.mark.parametrize("patch_size", [32, 16, 8])
def test_masked_positions_stay_zero_through_the_encoder(patch_size):
    spark = SparkPretrainer("resnet18", image_size=64, patch_size=patch_size, decoder_width=32)
    x = torch.rand(3, 1, 64, 64) + 0.5  # strictly positive: zeros can only come from masking
    active = spark.random_mask(3, x.device, torch.Generator().manual_seed(1))
    assert active.shape == (3, 1, 64 // patch_size, 64 // patch_size)
    assert (active.flatten(1).sum(1) == spark.num_visible).all()
    for feat in spark.encode(x, active):
        hidden = ~mask_at(active, tuple(feat.shape[-2:])).expand_as(feat)
        assert feat[hidden].abs().sum() == 0
        assert feat[~hidden].abs().sum() > 0


def test_loss_counts_masked_patches_only():
    torch.manual_seed(0)
    spark = SparkPretrainer("resnet18", image_size=64, decoder_width=32, normalize_target_patches=False)
    x = torch.rand(2, 1, 64, 64)
    loss = spark.training_loss(x, generator=torch.Generator().manual_seed(0))["loss"]
    loss.backward()
    assert torch.isfinite(loss) and spark.mask_tokens[0].grad is not None
    # a reconstruction equal to the input on masked patches gives zero loss, whatever it does elsewhere
    g = torch.Generator().manual_seed(0)
    active = spark.random_mask(2, x.device, g)
    fake = torch.where(mask_at(active, (64, 64)), torch.zeros_like(x), x)
    rec, target = spark._patchify(fake), spark._patchify(x)
    masked = (~active).reshape(2, -1).float()
    assert (((rec - target) ** 2).mean(-1) * masked).sum() == 0


def test_encoder_state_dict_loads_strictly_into_the_condition_encoder():
    spark = SparkPretrainer("resnet34", image_size=64, decoder_width=32)
    enc = ConditionEncoder("resnet34", cond_dim=8)
    enc.backbone.load_state_dict(spark.encoder_state_dict(), strict=True)


def test_invalid_patch_size_raises():
    with pytest.raises(UserInputError, match="patch_size"):
        SparkPretrainer("resnet18", image_size=64, patch_size=12)
