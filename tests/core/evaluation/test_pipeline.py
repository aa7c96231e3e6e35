"""ScoringPipeline: one volume -> post-processed map (+ reconstructions), seeded per volume; the
model is prepared for a run of scoring and restored after; `precision: auto` is bf16 autocast on CUDA, and
on CPU for diffusion models where the CPU has bf16 units, fp32 otherwise, resolved once per `prepared()`."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from benchmarks.bench_evaluation import Smoothing, SyntheticVolumes
from core.evaluation import reconstruction
from core.evaluation.pipeline import InferenceSettings, ScoringPipeline, ScoringSpec
from core.evaluation.reconstruction import Precision, autocast_dtype, resolve_precision
from model_zoo.autoencoder import ConvAutoencoder
from model_zoo.diffusion_models import DDPM, NoiseSettings
from model_zoo.unet_adm import UNetArchitecture
from optim.postprocessing import BrainMaskErosion, RemoveSmallComponents
from optim.scoring.l1 import L1Scorer

CPU = torch.device("cpu")


def _tiny_ddpm(**kwargs) -> DDPM:
    torch.manual_seed(0)
    ddpm = DDPM(image_size=16, unet=UNetArchitecture(base_channels=8, channel_mult=(1,), num_res_blocks=1, num_groups=4,
                                                     num_head_channels=8), noise_source=NoiseSettings(kind="gaussian"), **kwargs)
    with torch.no_grad():  # ADM zero-initialises its output layers: make the reconstruction depend on the noise
        for p in ddpm.unet.parameters():
            if not p.any():
                p.normal_(0, 0.05)
    return ddpm


@pytest.mark.parametrize("native", [True, False, None], ids=["bf16 units", "no bf16 units", "not reported"])
def test_precision_choice(monkeypatch, native):
    """`auto` on CPU: bf16 for a diffusion model on a CPU with bf16 units (its maps carry the reconstruction's
    noise), fp32 for a deterministic model and on a CPU without (or not reporting) bf16 units; CUDA: bf16."""
    monkeypatch.setattr(reconstruction, "cpu_bf16_native", lambda: native)
    cuda = torch.device("cuda")
    bf16_cpu = torch.bfloat16 if native is True else None
    assert autocast_dtype("auto", CPU, diffusion=True) is bf16_cpu
    assert autocast_dtype("auto", CPU, diffusion=False) is None  # a deterministic model: fp32
    for diffusion in (True, False):  # explicit choices as they were
        assert autocast_dtype("fp32", CPU, diffusion) is None and autocast_dtype("fp16", CPU, diffusion) is None
        assert autocast_dtype("bf16", CPU, diffusion) is torch.bfloat16
        assert autocast_dtype("auto", cuda, diffusion) is torch.bfloat16 and autocast_dtype("fp16", cuda, diffusion) is torch.float16
        assert autocast_dtype("fp32", cuda, diffusion) is None and autocast_dtype("bf16", cuda, diffusion) is torch.bfloat16
    assert resolve_precision("auto", CPU, True) is (Precision.BF16 if native is True else Precision.FP32)
    assert resolve_precision("fp16", CPU, True) is Precision.FP32  # fp16 runs on CUDA only
    assert resolve_precision("auto", cuda, False) is Precision.BF16
    with pytest.raises(ValueError):
        autocast_dtype("fp8", CPU)


@pytest.mark.parametrize("native", [True, False])
def test_auto_precision_is_resolved_once_per_run_of_scoring(monkeypatch, native):
    """On a CPU with bf16 units `auto` runs a DDPM in bf16 and keeps the AE in fp32 (no noise to hide bf16's
    difference); without bf16 units both stay fp32. An explicit setting, or a recorded one repeated, wins."""
    monkeypatch.setattr(reconstruction, "cpu_bf16_native", lambda: native)
    ddpm = ScoringPipeline(_tiny_ddpm(), ScoringSpec(L1Scorer()), CPU, 0)
    ae = ScoringPipeline(ConvAutoencoder(image_size=16, channels=(8, 8), latent_dim=4), ScoringSpec(L1Scorer()), CPU, 0)
    assert ddpm.autocast is None and ae.autocast is None  # nothing resolved before a run of scoring
    with ddpm.prepared(), ae.prepared():
        assert ddpm.autocast is (Precision.BF16 if native else Precision.FP32)
        assert ae.autocast is Precision.FP32
    assert ddpm.autocast is (Precision.BF16 if native else Precision.FP32)  # kept after it, for the record
    fp32 = ScoringSpec(L1Scorer(), inference=InferenceSettings(precision="fp32"))
    explicit = ScoringPipeline(_tiny_ddpm(), fp32, CPU, 0)
    with explicit.prepared():
        assert explicit.autocast is Precision.FP32
    with explicit.prepared(precision=Precision.BF16), ae.prepared(precision="bf16"):  # predict repeating a record
        assert explicit.autocast is Precision.BF16 and ae.autocast is Precision.BF16


def test_a_refused_precision_leaves_the_model_as_it_was():
    model = _tiny_ddpm(max_batch_size=64).train()
    pipeline = ScoringPipeline(model, ScoringSpec(L1Scorer(), inference=InferenceSettings(unet_batch_size=3)), CPU, 0)
    with pytest.raises(ValueError, match="precision"), pipeline.prepared(precision="fp8"):
        pass
    assert model.training and model.max_batch_size == 64 and model.unet.input_conv.weight.is_contiguous()


@pytest.mark.parametrize("native", [True, False])
def test_score_runs_at_the_resolved_precision(monkeypatch, native):
    """The map of `auto` is the map of the precision it resolved to, to the last digit."""
    monkeypatch.setattr(reconstruction, "cpu_bf16_native", lambda: native)
    volume = SyntheticVolumes(1, (16, 16, 3), 0)[0]
    maps = {}
    for precision in ("auto", "fp32", "bf16"):
        spec = ScoringSpec(L1Scorer(), inference=InferenceSettings(precision=precision, compile_unet=False))
        pipeline = ScoringPipeline(_tiny_ddpm(), spec, CPU, seed=7)
        with pipeline.prepared():
            maps[precision] = pipeline.score(volume, "test", 0).amap
    assert not np.array_equal(maps["bf16"], maps["fp32"])  # bf16 really ran
    np.testing.assert_array_equal(maps["auto"], maps["bf16" if native else "fp32"])


def test_channels_last_default_is_on_for_diffusion_models_only():
    assert ScoringPipeline(_tiny_ddpm(), ScoringSpec(L1Scorer()), CPU, 0).channels_last
    assert not ScoringPipeline(Smoothing(), ScoringSpec(L1Scorer()), CPU, 0).channels_last
    spec = ScoringSpec(L1Scorer(), inference=InferenceSettings(channels_last=True))
    assert ScoringPipeline(Smoothing(), spec, CPU, 0).channels_last


def test_score_is_the_chain_by_hand():
    volume = SyntheticVolumes(1, (16, 12, 5), 0)[0]
    model = Smoothing()
    spec = ScoringSpec(L1Scorer(num_reconstructions=2), map_postprocessing=[BrainMaskErosion(iterations=1)],
                       inference=InferenceSettings(slice_batch_size=2, channels_last=True))
    pipeline = ScoringPipeline(model, spec, CPU, seed=0)
    with pipeline.prepared():
        scored = pipeline.score(volume, "test", 0)
    slices = volume.image.permute(2, 0, 1).unsqueeze(1)
    rec = model.eval().reconstruct(slices, 1)[0, :, 0].permute(1, 2, 0)
    expected = BrainMaskErosion(iterations=1)((volume.image - rec).abs() * volume.mask, volume.mask)
    assert scored.reconstructions.shape == (2, 16, 12, 5) and scored.amap.dtype == np.float32
    np.testing.assert_allclose(scored.amap, expected.numpy(), atol=1e-7)


def test_binarize_and_sample_score_are_the_specs():
    amap = np.zeros((8, 8, 4), np.float32)
    amap[1:3, 1:3, 1:3] = 1.0  # 8 voxels: kept by min_size 8
    amap[6, 6, 0] = 1.0  # 1 voxel: removed
    mask = np.ones_like(amap, bool)
    spec = ScoringSpec(L1Scorer(), binary_postprocessing=[RemoveSmallComponents(min_size=8)], sample_score="max")
    pipeline = ScoringPipeline(Smoothing(), spec, CPU, 0)
    lesion = pipeline.binarize(amap, mask, 0.5)
    assert lesion.sum() == 8 and not lesion[6, 6, 0]
    assert pipeline.sample_score(amap, mask) == 1.0


def test_stochastic_scores_depend_on_the_volume_key_only():
    torch.manual_seed(0)
    volume = SyntheticVolumes(1, (16, 16, 3), 0)[0]
    pipeline = ScoringPipeline(_tiny_ddpm(), ScoringSpec(L1Scorer()), CPU, seed=7)
    with pipeline.prepared():
        a = pipeline.score(volume, "test", 2).amap
        torch.manual_seed(123)  # whatever ran before
        b = pipeline.score(volume, "test", 2).amap
        c = pipeline.score(volume, "test", 3).amap
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_prepared_restores_the_model():
    model = _tiny_ddpm(max_batch_size=64).train()
    spec = ScoringSpec(L1Scorer(), inference=InferenceSettings(unet_batch_size=3, compile_unet=False))
    pipeline = ScoringPipeline(model, spec, CPU, 0)
    with pipeline.prepared():
        assert not model.training and model.max_batch_size == 3
        assert model.unet.input_conv.weight.is_contiguous(memory_format=torch.channels_last)
    assert model.training and model.max_batch_size == 64
    assert model.unet.input_conv.weight.is_contiguous()


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

    maps = []
    for precision in ("fp32", "bf16"):
        pipeline = ScoringPipeline(Model(), ScoringSpec(L1Scorer(), inference=InferenceSettings(5, precision)), device, 0)
        with pipeline.prepared():
            maps.append(pipeline.score(volume, "test", 0).amap)
    np.testing.assert_allclose(maps[1], maps[0], atol=2e-2)


def test_slices_too_small_for_the_scorer_are_one_line_before_predict_writes():
    """`NeedsMinimumSlice` through the pipeline: the grid a scorer cannot score is said before scoring, by the
    run's pre-run check (`grid_problem`, core.run.assembly) and by predict's (`check_model_runs`)."""
    from core.commands.scan_checks import check_model_runs
    from dl_utils.errors import UserInputError
    from model_zoo.identity import IdentityModel
    from optim.scoring.ra_lpips import RAPerceptualScorer
    from optim.scoring.ssim import SSIMScorer

    pipeline = ScoringPipeline(IdentityModel(), ScoringSpec(scorer=RAPerceptualScorer(backbone="random")), CPU, 0)
    assert pipeline.slice_problem(16, 17) == "RAPerceptualScorer needs axial slices of at least 17x17 pixels"
    assert pipeline.slice_problem(17, 17) is None
    assert ScoringPipeline(IdentityModel(), ScoringSpec(scorer=L1Scorer()), CPU, 0).slice_problem(1, 1) is None
    with pytest.raises(UserInputError, match=r"^scan.nii.gz: preprocessing brings it onto 16x20x4 voxels, but RAPerceptualScorer needs "
                                             r"axial slices of at least 17x17 pixels; give scans"):
        check_model_runs(pipeline, torch.rand(16, 20, 4), "scan.nii.gz", "model.pt")
    check_model_runs(pipeline, torch.rand(17, 20, 1), "scan.nii.gz", "model.pt")  # LPIPS scores slices alone
    ssim = ScoringPipeline(IdentityModel(), ScoringSpec(scorer=SSIMScorer(padding="reflect", sigma=2.5)), CPU, 0)
    assert ssim.slice_problem(10, 10, 9) == "SSIMScorer needs volumes of at least 10 axial slices (its 3-D windows)"
    with pytest.raises(UserInputError, match=r"^scan.nii.gz: preprocessing brings it onto 32x32x9 voxels, but SSIMScorer needs "
                                             r"volumes of at least 10 axial slices"):
        check_model_runs(ssim, torch.rand(32, 32, 9), "scan.nii.gz", "model.pt")
    check_model_runs(ssim, torch.rand(32, 32, 10), "scan.nii.gz", "model.pt")
