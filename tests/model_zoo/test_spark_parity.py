"""SparK pre-training = the originals' SparK_2D (recorded from their module, see
tests/fixtures/parity/SOURCES.md): parameter counts and the masked loss on a fixed
input, mask and state dict (their weights loaded into ours under our module names)."""

import torch

from model_zoo.spark import SparkPretrainer

# SparK_2D(cfg) of the originals' paper pretraining config (resnet50, dec_dim 512, 96 px):
ORIGINAL_PARAMS = {"total": 37_964_305, "encoder": 23_501_760, "decoder": 10_304_913}
ORIGINAL_LOSS_TRAIN_BN = 0.5328220129013062  # BN batch statistics, DropPath off
ORIGINAL_LOSS_EVAL = 0.30608513951301575
ACTIVE = [1, 0, 0, 0, 1, 1, 0, 0, 0, 1, 0, 0, 1, 0, 1, 1, 1, 0, 1, 1, 0, 0, 0, 0, 0, 0, 0,
          1, 1, 0, 0, 1, 0, 1, 0, 0]  # (4, 1, 3, 3) visible patches, as recorded


def _paper_spark() -> SparkPretrainer:
    return SparkPretrainer("resnet50", 1, 96, mask_ratio=0.65, patch_size=32, decoder_width=512,
                           normalize_target_patches=False, drop_path_rate=0.05, zero_init_last=True)


def test_parameter_counts_match_the_originals():
    with torch.device("meta"):
        model = _paper_spark()
    assert sum(p.numel() for p in model.parameters()) == ORIGINAL_PARAMS["total"]
    assert sum(p.numel() for p in model.backbone.parameters()) == ORIGINAL_PARAMS["encoder"]
    assert sum(p.numel() for p in model.decoder.parameters()) == ORIGINAL_PARAMS["decoder"]


def test_raw_pixel_loss_matches_the_originals_module():
    torch.set_num_threads(1)
    model = _paper_spark()
    sd, g = model.state_dict(), torch.Generator().manual_seed(1)
    for k in sorted(sd):  # the recording's deterministic weights, over our sorted names
        v = sd[k]
        if not v.is_floating_point():
            continue
        if k.endswith("running_var") or (k.endswith("weight") and v.ndim == 1):
            sd[k] = 0.5 + torch.rand(v.shape, generator=g)
        else:
            sd[k] = 0.05 * torch.randn(v.shape, generator=g) if v.ndim > 1 else 0.1 * torch.randn(v.shape, generator=g)
    model.load_state_dict(sd, strict=True)
    x = torch.rand(4, 1, 96, 96, generator=g)
    active = torch.tensor(ACTIVE, dtype=torch.bool).reshape(4, 1, 3, 3)
    model.train()
    model.drop_path_rate = 0.0  # the recording switched DropPath off to be deterministic
    with torch.no_grad():
        loss_train = model.masked_loss(x, active)
    model.eval()
    with torch.no_grad():
        loss_eval = model.masked_loss(x, active)
    assert abs(float(loss_train) - ORIGINAL_LOSS_TRAIN_BN) < 1e-4 * ORIGINAL_LOSS_TRAIN_BN
    assert abs(float(loss_eval) - ORIGINAL_LOSS_EVAL) < 1e-4 * ORIGINAL_LOSS_EVAL
