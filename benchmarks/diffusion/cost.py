"""Per-volume cost of the diffusion models (the default mode of `python -m benchmarks.bench_diffusion`):
reconstruction time and peak memory per mode, training slices per second. Rows for `report.cost_table`."""
from __future__ import annotations

import argparse
import functools
from collections.abc import Callable

import torch

from benchmarks.diffusion.models import VOLUME_SLICES, cddpm_sizes, sizes
from benchmarks.harness import best_of, peak_mb
from model_zoo.diffusion_models import DDPM, ConditionalDDPM


def measure(fn: Callable[[], object], device: torch.device, repeats: int = 1) -> tuple[float, float, float]:
    """(wall seconds, process CPU seconds, peak-memory growth in MB): the fastest of ``repeats`` calls.

    One untimed call first, so that each case pays its own allocator growth and first-touch
    page faults outside the timing (a larger batch than the previous case's would otherwise).
    """
    sync = None
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        sync = functools.partial(torch.cuda.synchronize, device)
    before = 0.0 if device.type == "cuda" else peak_mb(device)
    wall, cpu = best_of(fn, repeats, sync=sync)
    return wall, cpu, peak_mb(device) - before


def reconstruction_rows(args: argparse.Namespace, device: torch.device) -> list[dict]:
    """One row per reconstruction mode (times for a 50-slice volume, scaled from `args.slices`), an
    estimated iterative-DDPM row and the batching and DDIM ratios (CPU time on CPU, else wall)."""
    torch.manual_seed(0)
    ddpm = DDPM(**sizes(args), max_batch_size=args.max_batch).to(device).eval()
    size = sizes(args)["image_size"]
    x = torch.rand(args.slices, 1, size, size, device=device)
    scale = VOLUME_SLICES / args.slices
    rows = []

    def run(name: str, passes: int, fn: Callable[[], object], note: str = "") -> float:
        seconds, cpu, mem = measure(fn, device, args.repeats)
        rows.append(dict(case=name, passes=passes, seconds=seconds * scale, cpu=cpu * scale, mem=mem, note=note))
        return cpu * scale if device.type == "cpu" else seconds * scale

    def mode(model: DDPM, m: str, steps: int | None = None) -> Callable[[], object]:
        def call() -> object:
            model.reconstruction_mode, model.sampling_steps = m, steps
            return model.reconstruct(x)

        return call

    def ens_three_passes(ddpm: DDPM = ddpm) -> object:
        ddpm.reconstruction_mode = "one_step"
        recs = []
        for level in ddpm.ensemble_timesteps:
            ddpm.t_test = level
            recs.append(ddpm.reconstruct(x))
        ddpm.t_test = 500
        return torch.stack(recs).mean(0)

    one = run("DDPM one-step", VOLUME_SLICES, mode(ddpm, "one_step"))
    ens = run("DDPM ENS batched (ours)", 3 * VOLUME_SLICES, mode(ddpm, "ensemble"))
    ens3 = run("DDPM ENS 3 passes (ref)", 3 * VOLUME_SLICES, ens_three_passes)
    ddim = run(f"DDPM DDIM-{args.ddim_steps}", args.ddim_steps * VOLUME_SLICES, mode(ddpm, "ddim", args.ddim_steps))
    one_wall = rows[0]["seconds"]
    rows.append(dict(case="DDPM iterative 500 (est.)", passes=500 * VOLUME_SLICES, seconds=500 * one_wall,
                     cpu=500 * one if device.type == "cpu" else float("nan"), mem=float("nan"),
                     note="500 x one-step, not run"))
    del ddpm
    cddpm = ConditionalDDPM(**cddpm_sizes(args), max_batch_size=args.max_batch).to(device).eval()
    run("cDDPM ENS (+ResNet-50)", 3 * VOLUME_SLICES, mode(cddpm, "ensemble"))
    rows.append(dict(case="ratio ENS 3 passes / batched", ratio=ens3 / ens))
    rows.append(dict(case=f"ratio DDPM-500 / DDIM-{args.ddim_steps}", ratio=500 * one / ddim))
    return rows


def training_rows(args: argparse.Namespace, device: torch.device) -> list[dict]:
    """Training slices per second (Adam step, batch `args.train_batch`) of the DDPM and the cDDPM."""
    rows = []
    for name, cls, model_sizes in (("DDPM", DDPM, sizes(args)), ("cDDPM", ConditionalDDPM, cddpm_sizes(args))):
        torch.manual_seed(0)
        model = cls(**model_sizes).to(device).train()
        opt = torch.optim.Adam(model.parameters(), lr=1e-4)
        x = torch.rand(args.train_batch, 1, model_sizes["image_size"], model_sizes["image_size"], device=device)

        def step(model: torch.nn.Module = model, opt: torch.optim.Optimizer = opt, x: torch.Tensor = x) -> None:
            opt.zero_grad(set_to_none=True)
            model.training_loss(x)["loss"].backward()
            opt.step()

        seconds, cpu, mem = measure(lambda: [step() for _ in range(args.train_steps)], device)
        rate = args.train_batch * args.train_steps / seconds
        rows.append(dict(case=f"{name} training (batch {args.train_batch})", rate=rate, cpu=cpu, mem=mem))
    return rows
