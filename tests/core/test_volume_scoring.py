"""score_volume: one volume -> post-processed map (+ reconstructions); fp32 on CPU unless bf16 is asked for, autocast on CUDA."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from benchmarks.bench_evaluation import Smoothing, SyntheticVolumes
from core.volume_scoring import autocast_dtype, prepare_model, score_volume, use_channels_last
from model_zoo.diffusion_models import DDPM
from optim.postprocessing import BrainMaskErosion
from optim.scoring.l1 import L1Scorer


def test_precision_choice():
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert autocast_dtype("auto", cpu) is None and autocast_dtype("fp16", cpu) is None  # CPU: fp32 unless bf16 is asked for
    assert autocast_dtype("bf16", cpu) is torch.bfloat16
    assert autocast_dtype("auto", cuda) is torch.bfloat16 and autocast_dtype("fp16", cuda) is torch.float16
    assert autocast_dtype("fp32", cuda) is None
    with pytest.raises(ValueError):
        autocast_dtype("fp8", cpu)
    assert use_channels_last(DDPM(image_size=16, base_channels=8, channel_mult=(1,), num_res_blocks=1, num_groups=4, num_head_channels=8), None)
    assert not use_channels_last(Smoothing(), None) and use_channels_last(Smoothing(), True)


def test_score_volume_is_the_chain_by_hand():
    volume = SyntheticVolumes(1, (16, 12, 5), 0)[0]
    model = prepare_model(Smoothing(), channels_last=True)
    amap, recs = score_volume(model, volume, L1Scorer(num_reconstructions=2), [BrainMaskErosion(iterations=1)],
                              torch.device("cpu"), slice_batch_size=2)
    slices = volume.image.permute(2, 0, 1).unsqueeze(1)
    rec = model.reconstruct(slices, 1)[0, :, 0].permute(1, 2, 0)
    expected = BrainMaskErosion(iterations=1)((volume.image - rec).abs() * volume.mask, volume.mask)
    assert recs.shape == (2, 16, 12, 5) and amap.dtype == np.float32
    np.testing.assert_allclose(amap, expected.numpy(), atol=1e-7)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_bf16_autocast_on_cuda_is_close_to_fp32():
    volume = SyntheticVolumes(1, (16, 12, 5), 0)[0]
    device = torch.device("cuda")
    conv = torch.nn.Conv2d(1, 1, 3, padding=1).to(device)

    class Model(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = conv

        def reconstruct(self, x, num_samples=1):
            return self.conv(x).float().unsqueeze(0).expand(num_samples, *x.shape)

    fp32, _ = score_volume(prepare_model(Model(), True), volume, L1Scorer(), [], device, 5, "fp32")
    bf16, _ = score_volume(prepare_model(Model(), True), volume, L1Scorer(), [], device, 5, "bf16")
    np.testing.assert_allclose(bf16, fp32, atol=2e-2)
