"""compile_unet: auto | true | false, the work estimate behind auto, and compiled = eager outputs."""
from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from benchmarks.bench_evaluation import HealthyVolumes, SyntheticVolumes
from core.evaluation import pipeline as pipeline_module
from core.evaluation import unet_compile
from core.evaluation.evaluator import AnomalyDetectionEvaluator, EvaluationContext
from core.evaluation.pipeline import InferenceSettings, ScoringSpec
from core.evaluation.settings import DataRoles, OutputSettings
from core.evaluation.unet_compile import check_setting, reconstruction_tflop, repeat_decision, should_compile, toolchain_missing
from dl_utils.errors import UserInputError
from model_zoo.diffusion_models import DDPM, NoiseSettings
from model_zoo.unet_adm import UNetArchitecture
from optim.scoring.l1 import L1Scorer

CPU = torch.device("cpu")


class OneConv(nn.Module):
    """A 'UNet' of one 3x3 convolution 1 -> 4 channels: FLOPs countable by hand."""

    def __init__(self) -> None:
        super().__init__()
        self.unet = nn.Conv2d(1, 4, 3, padding=1, bias=False)

    def reconstruct(self, x: torch.Tensor, num_samples: int = 1) -> torch.Tensor:
        out = torch.stack([self.unet(x).mean(1, keepdim=True) for _ in range(num_samples)])
        return out


def _volume(h: int, w: int, d: int) -> SimpleNamespace:
    return SimpleNamespace(image=torch.rand(h, w, d), mask=torch.ones(h, w, d, dtype=torch.bool), name="v")


def test_setting_values() -> None:
    assert check_setting("auto") == "auto" and check_setting(True) is True and check_setting(False) is False
    with pytest.raises(UserInputError, match="compile_unet"):
        check_setting("yes")


def test_tflop_is_the_hand_count_per_slice_times_depth_and_samples() -> None:
    # conv: 2 FLOPs per multiply-add, H * W * 4 outputs x 1 input channel x 9 taps, per slice
    per_slice = 2 * 12 * 10 * 4 * 1 * 9
    assert reconstruction_tflop(OneConv(), _volume(12, 10, 7), 1, CPU) * 1e12 == pytest.approx(7 * per_slice)
    assert reconstruction_tflop(OneConv(), _volume(12, 10, 7), 3, CPU) * 1e12 == pytest.approx(21 * per_slice)


def test_tflop_of_a_ddpm_counts_every_unet_pass_and_keeps_the_rng() -> None:
    ddpm = DDPM(image_size=16, unet=UNetArchitecture(base_channels=8, channel_mult=(1,), num_res_blocks=1, num_groups=4,
                                                     num_head_channels=8), noise_source=NoiseSettings(kind="gaussian")).eval()
    one_step = reconstruction_tflop(ddpm, _volume(16, 16, 5), 1, CPU)
    torch.manual_seed(3)
    ddpm.reconstruction_mode = "ensemble"  # 3 noise levels: 3 UNet passes per slice
    volume = _volume(16, 16, 5)
    before = torch.random.get_rng_state()
    ensemble = reconstruction_tflop(ddpm, volume, 1, CPU)
    assert torch.equal(torch.random.get_rng_state(), before)
    assert ensemble == pytest.approx(3 * one_step, rel=1e-6) and one_step > 0


def test_toolchain_missing_names_the_compiler(monkeypatch) -> None:
    monkeypatch.delenv("CXX", raising=False)
    monkeypatch.setattr(unet_compile.shutil, "which", lambda name: None)
    assert "C++ compiler" in toolchain_missing(CPU)
    monkeypatch.setenv("CXX", "my-cxx")
    assert "my-cxx" in toolchain_missing(CPU)


def test_decisions(monkeypatch) -> None:
    volumes = [[_volume(12, 10, 7)] * 4]  # a "data set" of 4 volumes
    per_volume = reconstruction_tflop(OneConv(), volumes[0][0], 1, CPU)
    assert not should_compile(False, OneConv(), CPU, volumes, 1)
    assert not should_compile("auto", nn.Identity(), CPU, volumes, 1)  # no UNet
    assert not should_compile("auto", OneConv(), CPU, volumes, 0)  # model-free scorer
    assert not should_compile("auto", OneConv(), torch.device("cuda"), volumes, 1)  # auto: CPU only
    monkeypatch.setattr(unet_compile, "toolchain_missing", lambda device: None)
    assert should_compile("auto", OneConv(), CPU, volumes, 1, min_tflop=4 * per_volume * 0.99)
    assert not should_compile("auto", OneConv(), CPU, volumes, 1, min_tflop=4 * per_volume * 1.01)
    # two ranks: each scores half the volumes
    assert not should_compile("auto", OneConv(), CPU, volumes, 1, min_tflop=3 * per_volume, world_size=2)
    assert should_compile(True, OneConv(), CPU, volumes, 1)
    monkeypatch.setattr(unet_compile, "toolchain_missing", lambda device: "no C++ compiler")
    assert not should_compile("auto", OneConv(), CPU, volumes, 1, min_tflop=0)
    with pytest.raises(UserInputError, match="compile_unet: true, but no C\\+\\+ compiler"):
        should_compile(True, OneConv(), CPU, volumes, 1)


def test_repeated_decisions(monkeypatch, caplog) -> None:
    """predict repeats an evaluation's recorded decision: compiled where inductor can, else eager with a warning."""
    monkeypatch.setattr(unet_compile, "toolchain_missing", lambda device: None)
    assert repeat_decision(True, OneConv(), CPU) and not repeat_decision(False, OneConv(), CPU)
    assert not repeat_decision(True, nn.Identity(), CPU)  # no UNet to compile
    monkeypatch.setattr(unet_compile, "toolchain_missing", lambda device: "no C++ compiler")
    assert not repeat_decision(True, OneConv(), CPU)
    assert "no C++ compiler" in caplog.text and "eagerly" in caplog.text


@pytest.mark.parametrize("recorded", [True, False])
def test_pipeline_repeats_a_recorded_decision_whatever_auto_would_say(monkeypatch, recorded) -> None:
    calls = []
    monkeypatch.setattr(pipeline_module, "compile_unet", lambda unet: calls.append(unet) or unet)
    monkeypatch.setattr(pipeline_module, "should_compile", lambda *args: not recorded)  # auto would decide otherwise
    monkeypatch.setattr(unet_compile, "toolchain_missing", lambda device: None)
    pipeline = pipeline_module.ScoringPipeline(_tiny_ddpm(), ScoringSpec(L1Scorer()), CPU, 0)
    with pipeline.prepared(compiled=recorded):
        assert pipeline.compiled_unet is recorded
    assert len(calls) == int(recorded)


def _tiny_ddpm() -> DDPM:
    torch.manual_seed(0)
    ddpm = DDPM(image_size=16, unet=UNetArchitecture(base_channels=8, channel_mult=(1, 2), num_res_blocks=1, num_groups=4,
                                                     num_head_channels=8), noise_source=NoiseSettings(kind="gaussian")).eval()
    with torch.no_grad():  # ADM zero-initialises its output layers: make the output non-trivial
        for p in ddpm.unet.parameters():
            if not p.any():
                p.normal_(0, 0.05)
    return ddpm


@pytest.mark.parametrize("min_tflop, compiles", [(0.0, True), (math.inf, False)])
def test_evaluator_compiles_only_above_the_threshold(monkeypatch, tmp_path, min_tflop, compiles) -> None:
    calls = []
    monkeypatch.setattr(pipeline_module, "compile_unet", lambda unet: calls.append(unet) or unet)
    monkeypatch.setattr(unet_compile, "toolchain_missing", lambda device: None)
    model = _tiny_ddpm()
    unet = model.unet
    evaluator = AnomalyDetectionEvaluator(
        context=EvaluationContext(model, CPU, {"test": SyntheticVolumes(2, (16, 16, 4), 1), "healthy": HealthyVolumes(2, (16, 16, 4), 3)}),
        seed=0,
        scoring=ScoringSpec(L1Scorer(), inference=InferenceSettings(compile_min_tflop=min_tflop)),
        roles=DataRoles(healthy_validation="healthy"), outputs=OutputSettings(figure_cases=0, save_maps=False))
    result = evaluator.run(tmp_path)
    assert len(calls) == (1 if compiles else 0)
    assert result.scored_with().compiled_unet is compiles  # recorded, for predict to repeat
    assert model.unet is unet  # the compiled UNet is swapped in for the evaluation only


@pytest.mark.skipif(toolchain_missing(CPU) is not None, reason="no C++ compiler for torch inductor")
def test_compiled_unet_equals_eager() -> None:
    eager = _tiny_ddpm()
    compiled = _tiny_ddpm()
    compiled.to(memory_format=torch.channels_last)
    compiled_unet = unet_compile.compile_unet(compiled.unet)
    x = torch.rand(6, 1, 16, 16) * 2 - 1
    t = torch.full((6,), 499, dtype=torch.long)
    with torch.inference_mode():
        reference = eager.unet(x, t)
        out = compiled_unet(x.contiguous(memory_format=torch.channels_last), t)
    assert reference.abs().max() > 0.01
    torch.testing.assert_close(out, reference, atol=1e-5, rtol=0)
