"""Whether to `torch.compile` the UNet for an evaluation: `compile_unet: auto | true | false`.

Compiled (inductor, frozen weights, channels-last), the paper UNet's one-step reconstruction
costs 0.63x the CPU time of plain eager fp32 with outputs equal to 1e-5 (max difference
6.8e-6 at an output scale of 1.9)
(`python -m benchmarks.bench_diffusion --cpu-speed --compile`), but each process pays a
compile first (and one more for a second batch shape). `auto` compiles where that is paid
back: on CPU, when a C++ compiler exists and the reconstruction work ahead of this process
(FLOPs of one slice, counted by torch's FlopCounterMode, times the slices it will score)
reaches `min_tflop`. The estimate counts operations, not seconds, so the decision, and with
it the last digits of the results, is the same on every rerun of a config. On CUDA `auto`
stays eager (not measured here); `true` compiles there too. The decision an evaluation took is
recorded with its results (`ScoredWith.compiled_unet`), and `uad predict` repeats it
(`repeat_decision`) instead of deciding anew for its few scans.
"""
from __future__ import annotations

import logging
import math
import os
import shutil
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from core.evaluation.contracts import DiffusionModel
from dl_utils.errors import UserInputError

LOG = logging.getLogger(__name__)

AUTO = "auto"
DEFAULT_MIN_TFLOP = 100.0
"""`auto` compiles on CPU from this much reconstruction work on. Measured on 2 cores (paper
UNet, one-step, 50-slice volumes of 7.5 TFLOP, `bench_diffusion --cpu-speed --compile
--cold-compile`): a compile into an empty cache took 56 s and saved 12.2 s per volume, so it
pays off after 4.6 volumes (34 TFLOP); 100 TFLOP (13 one-step volumes, 4-5 with ENS) leaves
room for slower compiles and the second compile of a smaller last batch. The demo
evaluations (64 x 64 slices, small UNets) stay far below it."""
CXX_CANDIDATES = ("g++", "c++", "clang++")


def check_setting(setting: bool | str) -> bool | str:
    """`true`, `false` or `"auto"`, else a one-line error."""
    if isinstance(setting, bool) or setting == AUTO:
        return setting
    raise UserInputError(f"compile_unet must be true, false or 'auto', got {setting!r}")


def toolchain_missing(device: torch.device) -> str | None:
    """Why inductor cannot compile for `device` here (None: it can)."""
    if device.type == "cpu":
        candidates = [os.environ["CXX"]] if os.environ.get("CXX") else list(CXX_CANDIDATES)
        if not any(shutil.which(c) for c in candidates):
            return f"no C++ compiler ({', '.join(candidates)}) on PATH, which torch inductor needs on CPU"
        return None
    if device.type == "cuda":
        from torch.utils._triton import has_triton

        return None if has_triton() else "triton is not installed, which torch inductor needs on CUDA"
    return f"torch inductor is not set up for device '{device.type}' here"


@torch.inference_mode()
def reconstruction_tflop(model: nn.Module, volume: Any, num_samples: int, device: torch.device) -> float:
    """TFLOP of reconstructing `volume` (`.image` (H, W, D)) with `num_samples` samples: the
    middle slice counted once, times D. The RNG state is restored afterwards."""
    image = volume.image.float()
    depth = image.shape[-1]
    one = image[..., depth // 2][None, None].to(device)  # (1, 1, H, W)
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []), \
            FlopCounterMode(display=False) as counter:
        model.reconstruct(one, num_samples=num_samples)
    return counter.get_total_flops() * depth / 1e12


def should_compile(setting: bool | str, model: nn.Module, device: torch.device, datasets: Sequence[Any],
                   num_samples: int, min_tflop: float = DEFAULT_MIN_TFLOP, world_size: int = 1) -> bool:
    """The decision for one process that will score its share (1 / `world_size`) of the
    volumes of `datasets`; logged with its reason."""
    setting = check_setting(setting)
    if setting is False or not isinstance(model, DiffusionModel) or num_samples < 1:
        return False
    missing = toolchain_missing(device)
    if setting is True:
        if missing:
            raise UserInputError(f"compile_unet: true, but {missing}; install it, or set compile_unet: auto or false")
        return True
    if device.type != "cpu":
        LOG.info("compile_unet auto: the UNet runs eagerly on %s (set compile_unet: true to compile)", device.type)
        return False
    if missing:
        LOG.warning("compile_unet auto: %s; the UNet runs eagerly", missing)
        return False
    sets = [d for d in datasets if len(d) > 0]
    if not sets:
        return False
    volumes = math.ceil(sum(len(d) for d in sets) / max(world_size, 1))
    work = reconstruction_tflop(model, sets[0][0], num_samples, device) * volumes
    decision = work >= min_tflop
    LOG.info("compile_unet auto: ~%.1f TFLOP of reconstruction for %d volumes on this process (compiles from %.0f): %s",
             work, volumes, min_tflop, "compiling the UNet" if decision else "eager")
    return decision


def repeat_decision(compiled: bool, model: nn.Module, device: torch.device) -> bool:
    """A decision made before (an evaluation's, recorded in its checkpoint; `uad predict` repeats
    it so that its maps equal the evaluated ones to the last digit): compile when that
    evaluation compiled, where inductor can here; else eager, with a warning."""
    if not compiled or not isinstance(model, DiffusionModel):
        return False
    missing = toolchain_missing(device)
    if missing:
        LOG.warning("the evaluation ran the UNet compiled, but %s; it runs eagerly (maps may differ from the "
                    "evaluated ones in the last digits, about 1e-5)", missing)
        return False
    return True


def compile_unet(unet: nn.Module) -> nn.Module:
    """The UNet compiled by `torch.compile` (inductor, frozen weights: test time only); the
    module itself is untouched, so the caller swaps it in for a run of scoring and back after."""
    return torch.compile(unet, options={"freezing": True})
