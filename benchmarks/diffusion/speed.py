"""`--cpu-speed`: the paper UNet's one-step reconstruction on CPU, plain eager fp32 against channels-last
and (with --compile) torch.compile, in alternating rounds."""
from __future__ import annotations

import argparse
import copy
import os
import statistics
import tempfile
import time

import torch

from benchmarks.diffusion import report
from benchmarks.diffusion.models import VOLUME_SLICES, randomize_zero_layers, sizes
from benchmarks.harness import alternating_rounds, timed_call
from model_zoo.diffusion_models import DDPM


def cpu_speed(args: argparse.Namespace) -> None:
    """Paper UNet one-step reconstruction on CPU, same weights and batch: plain eager fp32
    (= the originals bitwise) against channels-last and, with --compile, torch.compile
    (inductor, frozen weights) on channels-last, in alternating rounds; CPU seconds per
    round, the median ratio to eager, the largest output difference (must stay <= 1e-5),
    the compile time and the number of 50-slice volumes after which compiling has paid
    for itself. (A frozen TorchScript graph measured 1.07x, slower than eager: dropped.)"""
    from torch.utils.flop_counter import FlopCounterMode

    from core.evaluation.unet_compile import compile_unet

    torch.manual_seed(0)
    ddpm = DDPM(**sizes(args), max_batch_size=None).eval()
    net = ddpm.unet
    randomize_zero_layers(net)
    size = sizes(args)["image_size"]
    x = torch.rand(args.slices, 1, size, size) * 2 - 1
    t = torch.full((args.slices,), 499, dtype=torch.long)
    with torch.inference_mode(), FlopCounterMode(display=False) as flops:
        net(x[:1], t[:1])
    cl_net = copy.deepcopy(net).to(memory_format=torch.channels_last)
    x_cl = x.contiguous(memory_format=torch.channels_last)
    variants = {"eager fp32": lambda: net(x, t), "channels-last": lambda: cl_net(x_cl, t)}
    compile_s = None
    if args.compile:
        if args.cold_compile:  # an empty inductor cache: what a first run on a new machine pays
            os.environ["TORCHINDUCTOR_CACHE_DIR"] = tempfile.mkdtemp(prefix="uad-inductor-")
        compiled = compile_unet(copy.deepcopy(ddpm).to(memory_format=torch.channels_last).unet)  # as the evaluator does
        with torch.inference_mode():
            started = time.perf_counter()
            compiled(x_cl, t)
            compile_s = time.perf_counter() - started
        variants["compiled + channels-last"] = lambda: compiled(x_cl, t)
    with torch.inference_mode():
        reference = variants["eager fp32"]()
        scale = float(reference.abs().max())
        diffs = {k: float((f() - reference).abs().max()) for k, f in variants.items()}
        rounds = alternating_rounds({k: lambda f=f: timed_call(f)[1:] for k, f in variants.items()}, args.rounds)
    wall_times = {k: [wall for wall, _ in r] for k, r in rounds.items()}
    cpu_times = {k: [cpu for _, cpu in r] for k, r in rounds.items()}
    base = statistics.median(cpu_times["eager fp32"])
    ratios = {k: statistics.median(v) / base for k, v in cpu_times.items()}
    report.speed_table(args, flops.get_total_flops() / 1e9, scale, cpu_times, ratios, diffs)
    if compile_s is not None:
        saved = statistics.median(wall_times["eager fp32"]) - statistics.median(wall_times["compiled + channels-last"])
        report.compile_payoff(compile_s, saved * (VOLUME_SLICES / args.slices), args.cold_compile)
