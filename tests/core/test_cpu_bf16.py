"""bf16 autocast on CPU when asked for (`precision: bf16`, `uad predict --precision bf16`), and as `auto` for diffusion
models on a CPU with bf16 units; fp32 stays `auto` for deterministic models and on CPUs without bf16 units."""
from __future__ import annotations

import csv
from pathlib import Path
from types import SimpleNamespace

import nibabel as nib
import numpy as np
import pytest
import torch

from benchmarks.diffusion.models import randomize_zero_layers
from core.commands.cli import main as uad
from core.evaluation.pipeline import InferenceSettings, ScoringPipeline, ScoringSpec
from core.evaluation.unet_compile import toolchain_missing
from model_zoo.diffusion_models import DDPM
from model_zoo.unet_adm import UNetArchitecture
from optim.scoring.l1 import L1Scorer
from tests.data.raw_scans import phantom

ROOT = Path(__file__).resolve().parents[2]


def _maps(precision: str) -> tuple[np.ndarray, torch.Tensor]:
    torch.manual_seed(0)
    model = DDPM(image_size=16, unet=UNetArchitecture(base_channels=8, channel_mult=(1, 2), num_res_blocks=1, num_groups=4,
                                                      num_head_channels=8))
    randomize_zero_layers(model.unet)
    image, mask, _ = phantom((16, 16, 4), 1.0)
    volume = SimpleNamespace(name="v", image=torch.from_numpy(image), mask=torch.from_numpy(mask))
    inference = InferenceSettings(slice_batch_size=4, precision=precision, channels_last=True, compile_unet=False)
    pipeline = ScoringPipeline(model, ScoringSpec(L1Scorer(), inference=inference), torch.device("cpu"), seed=1)
    with pipeline.prepared():
        scored = pipeline.score(volume, "test", 0)
    return scored.amap, scored.reconstructions


@pytest.mark.parametrize("native", [True, False], ids=["bf16 units", "no bf16 units"])
def test_bf16_on_cpu_runs_the_unet_in_bf16_and_returns_fp32_maps(monkeypatch, native):
    from core.evaluation import reconstruction

    monkeypatch.setattr(reconstruction, "cpu_bf16_native", lambda: native)
    fp32_map, fp32_recs = _maps("fp32")
    auto_map, _ = _maps("auto")
    bf16_map, bf16_recs = _maps("bf16")
    np.testing.assert_array_equal(auto_map, bf16_map if native else fp32_map)  # auto: bf16 for a DDPM on a bf16 CPU
    assert bf16_map.dtype == np.float32 and bf16_recs.dtype == torch.float32
    assert not np.array_equal(bf16_map, fp32_map)  # autocast really ran (bf16 rounding shows)
    assert float((bf16_recs - fp32_recs).abs().max()) < 0.05  # bf16 keeps ~3 significant digits


def test_predict_with_bf16_on_cpu(tmp_path, capsys):
    image, _, affine = phantom((60, 70, 40), 1.0)
    nib.save(nib.Nifti1Image(image, affine), tmp_path / "scan.nii.gz")
    outputs = {}
    for precision in ("fp32", "bf16"):
        code = uad(["predict", "--model", str(ROOT / "weights" / "ra_demo.pt"), "--input", str(tmp_path / "scan.nii.gz"),
                    "--output", str(tmp_path / precision), "--skull-strip", "none", "--no-registration", "--no-n4", "--no-png",
                    "--precision", precision, "--device", "cpu"])
        assert code == 0, capsys.readouterr()
        (row,) = list(csv.DictReader((tmp_path / precision / "predictions.csv").open()))
        outputs[precision] = np.asarray(nib.load(row["map_path"]).dataobj)
    scale = float(np.abs(outputs["fp32"]).mean())
    assert 0 < float(np.abs(outputs["bf16"] - outputs["fp32"]).mean()) < 0.1 * scale


def test_bf16_on_a_cpu_without_bf16_units_warns_once(monkeypatch, caplog):
    """bf16 autocast on a CPU that torch says lacks AVX-512 BF16 / AMX-BF16 runs emulated (slow): one line says so."""
    from core.evaluation.reconstruction import autocast_dtype
    from dl_utils import device

    cpu = torch.device("cpu")
    monkeypatch.setattr(device, "_warned", set())
    monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: {"avx512_bf16": False, "amx_bf16": False, "avx2": True})
    assert device.cpu_bf16_native() is False
    assert autocast_dtype("fp32", cpu) is None and autocast_dtype("auto", cpu) is None and not caplog.records  # no bf16, no warning
    assert autocast_dtype("auto", cpu, diffusion=True) is None and not caplog.records  # auto: fp32 without bf16 units
    for _ in range(3):
        assert autocast_dtype("bf16", cpu) is torch.bfloat16
    (record,) = caplog.records
    assert record.levelname == "WARNING" and "\n" not in record.getMessage()
    assert record.getMessage().startswith("precision bf16 on a CPU without bf16 units")
    caplog.clear()
    monkeypatch.setattr(device, "_warned", set())
    for capabilities in ({"avx512_bf16": True, "amx_bf16": False}, {"amx_bf16": True}, {"avx2": True}):  # native, or not reported
        monkeypatch.setattr(torch.cpu, "get_capabilities", lambda capabilities=capabilities: capabilities)
        assert autocast_dtype("bf16", cpu) is torch.bfloat16
    assert not caplog.records


@pytest.mark.skipif(toolchain_missing(torch.device("cpu")) is not None, reason="no C++ compiler for torch inductor")
def test_bf16_with_the_compiled_unet_as_evaluated():
    """bf16 autocast with the UNet compiled (inductor, frozen weights, channels-last: how a paper-scale evaluation
    runs) scores through the evaluator's pipeline, gives fp32 maps and stays at bf16's distance from eager fp32.
    A one-level UNet on 8 x 8 x 2 keeps the compile short (about 40 s of CPU into an empty inductor cache)."""
    torch.manual_seed(0)
    model = DDPM(image_size=8, unet=UNetArchitecture(base_channels=8, channel_mult=(1,), num_res_blocks=1, num_groups=4,
                                                     num_head_channels=8))
    randomize_zero_layers(model.unet)
    image = torch.rand(8, 8, 2, generator=torch.Generator().manual_seed(0))
    volume = SimpleNamespace(name="v", image=image, mask=torch.ones(8, 8, 2, dtype=torch.bool))
    maps = {}
    for precision, compiled in (("fp32", False), ("bf16", False), ("bf16", True)):
        inference = InferenceSettings(slice_batch_size=2, precision=precision, channels_last=True, compile_unet=compiled)
        pipeline = ScoringPipeline(model, ScoringSpec(L1Scorer(), inference=inference), torch.device("cpu"), seed=1)
        with pipeline.prepared():
            assert pipeline.compiled_unet is compiled
            maps[precision, compiled] = pipeline.score(volume, "test", 0).amap
    assert maps["bf16", True].dtype == np.float32
    scale = float(np.abs(maps["fp32", False]).mean())
    assert scale > 0 and not np.array_equal(maps["bf16", True], maps["fp32", False])  # bf16 really ran compiled
    assert float(np.abs(maps["bf16", True] - maps["fp32", False]).mean()) < 0.05 * scale
    assert float(np.abs(maps["bf16", True] - maps["bf16", False]).mean()) < 0.05 * scale
