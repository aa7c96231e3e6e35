"""Cost of the diffusion models at the paper's size: per-volume reconstruction and training.

    python -m benchmarks.bench_diffusion [--quick] [--slices N] [--device cpu|cuda]
    python -m benchmarks.bench_diffusion --cpu-speed [--compile [--cold-compile]] [--slices N] [--rounds R]
    python -m benchmarks.bench_diffusion --cpu-precision [--slices N] [--rounds R] [--weights CKPT] [--no-compile | --compiled-only]

A test volume is 50 axial slices of 96 x 96 (docs/methods.md section 10). Reconstruction
runs ``measured`` slices (all 50 unless --quick / --slices) and reports the time for
50, extrapolated linearly when fewer were measured (marked "x"). Rows:
- one-step (DDPM, t_test = 500): one UNet pass per slice.
- ENS batched (ours): the 3 noise levels in one batch; ENS 3 passes: the originals'
  loop, one call per level. Their ratio is the batching gain. On GPU batching fills
  the device; on a 2-core CPU it measured 0.84x (a 12-slice UNet batch costs ~14 % more
  CPU time per slice than three 4-slice batches: larger activations leave the cache), so
  CPU users gain from a smaller ``max_batch_size``.
- DDIM-k from t_test: k UNet passes; iterative DDPM with 500 steps is estimated as
  500 x the one-step time (not run), for the ratio against DDIM-k.
- cDDPM ENS: ENS plus one ResNet-50 pass per slice.
- training: slices per second, Adam step, batch ``--train-batch``.
Peak memory: torch.cuda.max_memory_allocated on CUDA; on CPU the growth of the
process's max RSS (resource.getrusage), which only shows a phase that raises the peak.
On CPU the ratios use process CPU time, which a busy shared machine disturbs less than
wall time.

This module is the command line; the work is in benchmarks/diffusion/ (the models and methods,
the evaluated volume, each mode, the printed tables) and the timing in benchmarks/harness.py.
"""

from __future__ import annotations

import argparse

import torch

from benchmarks.diffusion.cost import reconstruction_rows, training_rows
from benchmarks.diffusion.models import VOLUME_SLICES
from benchmarks.diffusion.precision import cpu_precision
from benchmarks.diffusion.report import cost_table
from benchmarks.diffusion.speed import cpu_speed


def main(argv: list[str] | None = None) -> None:
    """Parse the flags, fill in the defaults of --quick / --tiny and run the chosen mode."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="2 slices, DDIM-5, 1 training step of batch 2")
    p.add_argument("--tiny", action="store_true", help="--quick with a 32-px small UNet: checks that it runs (no paper figures)")
    p.add_argument("--slices", type=int, default=None, help="slices measured (default 50; quick 2)")
    p.add_argument("--ddim-steps", type=int, default=None, help="DDIM steps k (default 10; quick 5)")
    p.add_argument("--train-batch", type=int, default=None, help="training batch (default 8; quick 2)")
    p.add_argument("--train-steps", type=int, default=None, help="timed training steps (default 3; quick 1)")
    p.add_argument("--max-batch", type=int, default=64, help="UNet batch cap at test time (model default 64)")
    p.add_argument("--repeats", type=int, default=1, help="timed runs per reconstruction case (fastest kept)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--cpu-speed", action="store_true", help="only: eager vs channels-last (vs compiled), alternating")
    p.add_argument("--rounds", type=int, default=5, help="alternating rounds of --cpu-speed")
    p.add_argument("--compile", action="store_true", help="--cpu-speed: add torch.compile (inductor, frozen weights)")
    p.add_argument("--cold-compile", action="store_true", help="--compile into an empty inductor cache")
    p.add_argument("--cpu-precision", action="store_true",
                   help="only: fp32 vs bf16 autocast on CPU per method (time ratio, s per scan, map difference vs noise)")
    p.add_argument("--weights", help="--cpu-precision: a DDPM / cDDPM checkpoint (default: paper-size random weights); a "
                                     "self-describing one runs its own model on the first volume of its first labelled test set (by the "
                                     "evaluator's roles: not a healthy or validation set)")
    p.add_argument("--no-compile", action="store_true", help="--cpu-precision: skip the compiled fp32 / bf16 pair")
    p.add_argument("--compiled-only", action="store_true", help="--cpu-precision: only the compiled pair (also with --tiny)")
    args = p.parse_args(argv)
    quick = args.quick or args.tiny
    if args.cpu_precision and not args.slices:
        args.slices = 2 if quick else 4  # per round: MHD's 10 reconstructions x 3 precisions runs; x 50 / slices per scan
    args.slices = args.slices or (2 if quick else VOLUME_SLICES)
    args.ddim_steps = args.ddim_steps or (5 if quick else 10)
    args.train_batch = args.train_batch or (2 if quick else 8)
    args.train_steps = args.train_steps or (1 if quick else 3)
    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.cpu_precision:
        cpu_precision(args)
        return
    if args.cpu_speed:
        cpu_speed(args)
        return
    with torch.no_grad():
        rows = reconstruction_rows(args, device)
    rows += training_rows(args, device)
    cost_table(rows, args, device)


if __name__ == "__main__":
    main()
