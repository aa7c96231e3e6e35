"""The printed tables of `python -m benchmarks.bench_diffusion`: the per-volume cost table, the CPU speed
table of `--cpu-speed` and the rows of the `--cpu-precision` table. Printing is their only job."""
from __future__ import annotations

import argparse

import torch

from benchmarks.diffusion.models import VOLUME_SLICES


def cost_table(rows: list[dict], args: argparse.Namespace, device: torch.device) -> None:
    """The rows of `cost.reconstruction_rows` and `cost.training_rows`, one line each under a header."""
    extrap = "x" if args.slices < VOLUME_SLICES else ""
    print(f"device={device}  threads={torch.get_num_threads()}  measured slices={args.slices} "
          f"(times for a {VOLUME_SLICES}-slice volume{', extrapolated' if extrap else ''})")
    print(f"{'case':34s} {'UNet passes':>11s} {'wall s/vol':>11s} {'CPU s/vol':>10s} {'peak +MB':>9s}  note")
    for r in rows:
        if "ratio" in r:
            print(f"{r['case']:34s} {'':>11s} {r['ratio']:>10.2f}x  ({'CPU' if device.type == 'cpu' else 'wall'} time)")
        elif "rate" in r:
            print(f"{r['case']:34s} {'':>11s} {r['rate']:>6.2f} sl/s {r['cpu']:>9.1f}s {r['mem']:>8.0f}  CPU s per run")
        else:
            print(f"{r['case']:34s} {r['passes']:>11d} {r['seconds']:>10.1f}{extrap:1s} {r['cpu']:>10.1f} "
                  f"{r['mem']:>8.0f}  {r['note']}")


def speed_table(args: argparse.Namespace, gflop: float, scale: float, cpu_times: dict[str, list[float]],
                ratios: dict[str, float], diffs: dict[str, float]) -> None:
    """`--cpu-speed`: per variant the CPU seconds of each round, the median ratio to eager and the largest output difference."""
    print(f"{'tiny' if args.tiny else 'paper'} UNet one-step, {args.slices} slices, {gflop:.0f} GFLOP per slice, "
          f"CPU threads={torch.get_num_threads()}, {args.rounds} alternating rounds; output max |eager| = {scale:.3g}")
    print("| variant | CPU s per round | median ratio to eager | max abs diff |")
    print("|---|---|---|---|")
    for name in cpu_times:
        print(f"| {name} | {', '.join(f'{v:.2f}' for v in cpu_times[name])} | {ratios[name]:.3f} | {diffs[name]:.1e} |")


def compile_payoff(compile_s: float, saved: float, cold: bool) -> None:
    """`--cpu-speed --compile`: the compile time and after how many volumes it has paid for itself."""
    cache = "empty" if cold else "as found"
    payoff = f"pays off after {compile_s / saved:.1f} volumes" if saved > 0 else "never pays off at this size"
    print(f"compile: {compile_s:.0f} s wall (inductor cache {cache}); saves {saved:.1f} s wall per "
          f"{VOLUME_SLICES}-slice one-step volume: {payoff}")


def scan_seconds(seconds: float) -> str:
    """Seconds for a table: whole from 10 on, one decimal below (a demo-size model's scan takes a few)."""
    return f"{seconds:.0f}" if seconds >= 10 else f"{seconds:.1f}"


def precision_header(args: argparse.Namespace, where: str, per_scan: float, auto: str, native: bool | None) -> None:
    """`--cpu-precision`: what is timed, what `precision: auto` picks here, and the table's header."""
    weights = f"checkpoint {args.weights}" if args.weights else "random weights, zero layers randomised"
    size_name = "checkpoint's" if args.weights else "tiny" if args.tiny else "paper"
    print(f"CPU precision: {size_name} UNets ({weights}), {where}, threads={torch.get_num_threads()}, "
          f"{args.rounds} alternating rounds; times scaled x{per_scan:.3g} to a {VOLUME_SLICES}-slice scan")
    print(f"default here: `precision: auto` runs these diffusion methods in {auto} "
          f"on this CPU (bf16 units: {'yes' if native else 'no' if native is False else 'not reported'}; "
          "auto = bf16 where the CPU has them, the maps staying within the noise column below), the AE and RA in fp32")
    print("| method | UNet passes / scan | fp32 CPU s / scan | bf16 CPU s / scan | bf16 / fp32 (median CPU ratio) | "
          "fp32 wall s / scan | bf16 wall s / scan | map diff bf16 vs fp32 | map diff fp32 seed vs seed | bf16 within noise |")
    print("|---|---|---|---|---|---|---|---|---|---|")


def precision_row(name: str, passes: int, cpu: dict[str, float], wall: dict[str, float], ratio: float,
                  d_bf16: float, d_seed: float) -> None:
    """One method's row: seconds per scan ({precision: s}), the median CPU ratio and the map differences."""
    s = scan_seconds
    print(f"| {name} | {passes} | {s(cpu['fp32'])} | {s(cpu['bf16'])} | {ratio:.2f} | {s(wall['fp32'])} | "
          f"{s(wall['bf16'])} | {d_bf16:.2%} | {d_seed:.2%} | {'yes' if d_bf16 < d_seed else 'NO'} |", flush=True)
