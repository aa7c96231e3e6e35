"""`--cpu-precision`: fp32 against bf16 autocast on CPU for each method, through the evaluator's own
scoring pipeline, in alternating rounds; the map difference against the reconstruction's own noise."""
from __future__ import annotations

import argparse
import contextlib
import copy
import statistics
import time
from collections.abc import Callable
from types import SimpleNamespace

import torch

from benchmarks.diffusion import report
from benchmarks.diffusion.models import VOLUME_SLICES, method_cases, paper_models, sizes
from benchmarks.diffusion.volumes import checkpoint_case
from benchmarks.harness import alternating_rounds, median_ratio, timed_call

Scored = tuple[torch.Tensor, float, float]  # anomaly map, wall s, process CPU s


def cpu_precision(args: argparse.Namespace) -> None:
    """fp32 against bf16 autocast on CPU for each method, through the evaluator's own
    `core.evaluation.pipeline.ScoringPipeline` (channels-last), same weights, same input volume, same
    noise seed, in alternating rounds: median CPU-time ratio bf16 / fp32, seconds per
    50-slice scan, and the anomaly-map difference bf16 vs fp32 against the noise of the
    reconstruction itself (the difference between two fp32 maps drawn with different noise
    seeds), as mean |difference| over brain voxels relative to the mean fp32 map there.
    The methods run eagerly; then the DDPM one-step map as evaluated at scale (channels-last and
    `torch.compile`, `compile_unet`) once more, compiled fp32 against compiled bf16 (skipped with
    --tiny or --no-compile: each compile takes minutes on 2 cores; --compiled-only runs only this pair)."""
    from benchmarks.bench_scorers import synthetic_case
    from core.evaluation.pipeline import InferenceSettings, ScoringPipeline, ScoringSpec
    from core.evaluation.reconstruction import Precision, resolve_precision
    from dl_utils.device import cpu_bf16_native

    volume, where, size = None, "", sizes(args)["image_size"]
    if args.weights:
        ddpm, cddpm, volume, where, size = checkpoint_case(args)
    else:
        ddpm, cddpm = paper_models(args)
    if volume is None:
        image, _, mask = synthetic_case(1, shape=(size, size, args.slices))
        volume = SimpleNamespace(name="synthetic", image=image, mask=mask)
        where = f"synthetic {size} x {size} x {args.slices} volume"
    slices = volume.image.shape[-1]
    cases = method_cases(ddpm, cddpm, slices)
    cpu = torch.device("cpu")

    def pipeline(name: str, precision: str, compiled: bool = False) -> ScoringPipeline:
        model, _, scorer = cases[name]
        inference = InferenceSettings(slice_batch_size=slices, precision=precision, channels_last=True,
                                      compile_unet=compiled, unet_batch_size=None)
        return ScoringPipeline(copy.deepcopy(model) if compiled else model, ScoringSpec(scorer, inference=inference), cpu, seed=0)

    def timed(scoring: ScoringPipeline, seed: int) -> Scored:
        amap, wall, cpu_s = timed_call(lambda: scoring.score(volume, "bench", seed).amap)
        return torch.from_numpy(amap), wall, cpu_s

    def score(name: str, precision: str, seed: int) -> Scored:
        """The evaluator's scoring of the volume (eager: compile_unet off), noise seeded by `seed`."""
        scoring = pipeline(name, precision)
        with scoring.prepared():
            return timed(scoring, seed)

    brain = volume.mask.bool()
    per_scan = VOLUME_SLICES / slices

    def row(name: str, passes: int, run: Callable[[str, int], Scored]) -> None:
        """Alternating rounds of fp32 and bf16 through `run(precision, seed)`; one printed table row."""
        run("fp32", 0)  # warm-up: allocator growth and first-touch page faults outside the timing
        rounds = alternating_rounds({p: lambda p=p: run(p, 0) for p in ("fp32", "bf16")}, args.rounds)
        maps = {p: r[-1][0] for p, r in rounds.items()}
        other_seed, _, _ = run("fp32", 1)
        level = float(maps["fp32"][brain].abs().mean())
        d_bf16 = float((maps["bf16"] - maps["fp32"])[brain].abs().mean()) / level
        d_seed = float((other_seed - maps["fp32"])[brain].abs().mean()) / level
        ratio = median_ratio((cpu_s for _, _, cpu_s in rounds["bf16"]), (cpu_s for _, _, cpu_s in rounds["fp32"]))
        med_cpu = {p: statistics.median(cpu_s for _, _, cpu_s in r) * per_scan for p, r in rounds.items()}
        med_wall = {p: statistics.median(wall for _, wall, _ in r) * per_scan for p, r in rounds.items()}
        report.precision_row(name, passes, med_cpu, med_wall, ratio, d_bf16, d_seed)

    report.precision_header(args, where, per_scan, resolve_precision(Precision.AUTO, cpu, True), cpu_bf16_native())
    with torch.inference_mode():
        for name, (model, n, _) in cases.items():
            if args.compiled_only:
                break
            passes = VOLUME_SLICES * n * (len(model.ensemble_timesteps) if model.reconstruction_mode == "ensemble" else 1)
            row(name, passes, lambda precision, seed, name=name: score(name, precision, seed))
        compiled_case = next((n for n in cases if n.startswith("DDPM one-step")), None)
        if compiled_case is None or (args.tiny and not args.compiled_only) or args.no_compile:
            print(f"compiled + channels-last pair: skipped ({'no DDPM' if compiled_case is None else '--tiny' if args.tiny else '--no-compile'}"
                  "; a compile takes minutes on 2 cores: tests/core/test_cpu_bf16.py compiles a tiny UNet under bf16)")
            return
        compiled, compile_s = {}, {}
        with contextlib.ExitStack() as stack:
            for precision in ("fp32", "bf16"):  # each its own copy of the model, compiled once, kept for the rounds
                compiled[precision] = stack.enter_context(pipeline(compiled_case, precision, compiled=True).prepared())
                started = time.perf_counter()
                compiled[precision].score(volume, "bench", 0)
                compile_s[precision] = time.perf_counter() - started
            row(f"{compiled_case}, compiled + channels-last", VOLUME_SLICES,
                lambda precision, seed: timed(compiled[precision], seed))
        print(f"compile (first call, wall, inductor cache as found): fp32 {compile_s['fp32']:.0f} s, bf16 {compile_s['bf16']:.0f} s")
