"""Time the anomaly scorers per 96 x 96 x 50 volume: python -m benchmarks.bench_scorers [--quick].

Synthetic input: a smooth volume, an ellipsoid brain mask and N noisy reconstructions.
Reports the best wall and process-CPU time of `--repeats` runs after one warm-up (slow
baselines run once; the best, not the median, because other jobs may share the machine)
and, per group, the wall-time ratio to the group's first row. No assertions on time.
`--quick` (a 40 x 40 x 16 volume, one run, one dense slice) only checks that it runs.
`--fp16-mhd`: only the fp16 MHD path (`precision: fp16`) on one central slice: before vs after
its in-place + lambda I, in alternating rounds on the same input (process-CPU-time ratio, bitwise
check), the share of its time in the dense inverse, and how far other inverses would move its
fp16-rounded scores.
"""

import argparse
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from pytorch_msssim import ssim as msssim_ssim
from skimage.metrics import structural_similarity
from torch.overrides import TorchFunctionMode

from benchmarks.harness import alternating_rounds, best_of, median_ratio, timed_call
from optim.scoring import (
    L1Scorer,
    MahalanobisScorer,
    SSIMEnsembleScorer,
    mahalanobis_pixel_scores,
    ssim_maps,
)
from optim.scoring.mahalanobis import autocast_fp16_pixel_scores
from optim.scoring.mahalanobis_reference import dense_mahalanobis_pixel_scores
from optim.scoring.ssim import ENSEMBLE_SIGMAS

Row = tuple[str, tuple[float, float], str]  # name, (wall s, CPU s), note
SHAPE = (96, 96, 50)
SEMI_AXES = (47.0, 42.0, 30.0)  # the largest ellipse in 96 x 96 holds ~7200 pixels, not 9000


QUICK_SHAPE = (40, 40, 16)  # 16 slices: skimage needs the largest sigma's window (13) to fit


def synthetic_case(num_recs: int, seed: int = 0, shape: tuple[int, int, int] = SHAPE
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """x `shape` (default 96, 96, 50) float32 in [0, 1], recs (N, *shape), ellipsoid brain mask."""
    g = torch.Generator().manual_seed(seed)
    axes = [torch.arange(n, dtype=torch.float32) - (n - 1) / 2 for n in shape]
    grids = torch.meshgrid(*axes, indexing="ij")
    semi = [a * n / full for a, n, full in zip(SEMI_AXES, shape, SHAPE)]
    mask = sum((grid / a) ** 2 for grid, a in zip(grids, semi)) <= 1
    x = (0.5 + 0.2 * torch.sin(grids[0] / 7) * torch.cos(grids[1] / 5)) * mask
    x = (x + 0.02 * torch.rand(shape, generator=g)).clamp(0, 1)
    recs = (x + 0.03 * torch.randn((num_recs, *shape), generator=g)).clamp(0, 1)
    return x, recs, mask


def row(name: str, fn: Callable[[], object], repeats: int, note: str = "") -> Row:
    """One table row: the best timing of fn under name (after one warm-up when repeats > 1)."""
    return name, best_of(fn, repeats, warm_up=repeats > 1), note


def _window(sigma: float, truncate: float = 3.5) -> int:
    return 2 * int(truncate * sigma + 0.5) + 1


def ssim_rows(repeats: int, shape: tuple[int, int, int] = SHAPE) -> list[Row]:
    """The 8-sigma SSIM ensemble: one pass vs eight single-sigma computations."""
    x, recs, mask = synthetic_case(1, shape=shape)
    y = recs[0]
    xn, yn = x.numpy(), y.numpy()
    rng = float(max(np.ptp(xn), np.ptp(yn)))

    def eight_single() -> None:
        for s in ENSEMBLE_SIGMAS:
            ssim_maps(y, x, (s,), spatial_dims=3)

    def eight_msssim() -> None:
        for s in ENSEMBLE_SIGMAS:
            msssim_ssim(y[None, None], x[None, None], data_range=rng, size_average=False,
                        win_size=_window(s), win_sigma=s)

    def eight_skimage() -> None:
        for s in ENSEMBLE_SIGMAS:
            structural_similarity(yn, xn, full=True, gaussian_weights=True, sigma=s,
                                  use_sample_covariance=False, data_range=rng)

    def stacked() -> None:
        ssim_maps(y, x, ENSEMBLE_SIGMAS, spatial_dims=3, sigmas_per_pass=None)

    scorer_3d, scorer_2d = SSIMEnsembleScorer(), SSIMEnsembleScorer(spatial_dims=2)
    return [
        row("SSIM ensemble 3D scorer (ours, sigma by sigma)",
            lambda: scorer_3d(x, recs, mask), repeats),
        row("ours, all 8 sigmas stacked in one product", stacked, repeats, "sigmas_per_pass=None"),
        row("8 x ours single-sigma ssim_maps", eight_single, repeats),
        row("8 x pytorch_msssim.ssim", eight_msssim, repeats, "valid region, no padding"),
        row("8 x skimage structural_similarity (full)", eight_skimage, 1, "1 run"),
        row("SSIM ensemble 2D scorer (per axial slice)", lambda: scorer_2d(x, recs, mask), repeats),
    ]


def mahalanobis_rows(repeats: int, dense_slices: int, shape: tuple[int, int, int] = SHAPE) -> list[Row]:
    """MHD with N = 10: Woodbury (all slices batched) vs the dense P x P inverse per slice."""
    x, recs, mask = synthetic_case(10, shape=shape)
    depth = shape[-1]
    centre = depth // 2
    chosen = list(range(centre - dense_slices // 2, centre - dense_slices // 2 + dense_slices))
    brain = mask.flatten(0, 1).sum(0)
    dense_time = best_of(lambda: dense_mahalanobis_pixel_scores(x, recs, mask, slices=chosen), 1, warm_up=False)
    fp16_time = best_of(lambda: autocast_fp16_pixel_scores(x[..., chosen], recs[..., chosen], mask[..., chosen]), 1,
                        warm_up=False)
    note = "full volume"
    if len(chosen) < depth:
        dense_time = tuple(t * depth / len(chosen) for t in dense_time)
        note = f"{len(chosen)} central slices x {depth}/{len(chosen)}: upper bound"
    scorer = MahalanobisScorer()
    sizes = f"P: central {int(brain[centre])}, mean {brain.float().mean():.0f}"
    return [
        row("MHD pixel scores, Woodbury batched",
            lambda: mahalanobis_pixel_scores(x, recs, mask), repeats),
        ("MHD pixel scores, dense P x P inverse", dense_time, note),
        ("MHD pixel scores, originals' fp16 (dense)",
         tuple(t * depth / len(chosen) for t in fp16_time) if len(chosen) < depth else fp16_time, f"precision fp16; {note}"),
        row("MHD pixel scores, diagonal variant",
            lambda: mahalanobis_pixel_scores(x, recs, mask, diagonal=True), repeats),
        row("MahalanobisScorer (+ smoothing, SSIM)", lambda: scorer(x, recs, mask), repeats, sizes),
    ]


def _fp16_scores_before(x: torch.Tensor, recs: torch.Tensor, mask: torch.Tensor,
                        regularization: float = 0.01) -> torch.Tensor:
    """`autocast_fp16_pixel_scores` before the in-place + lambda I: a P x P identity, scaled, added."""
    n = recs.shape[0]
    half = recs.to(torch.float16)
    mean = half.mean(0)
    out = torch.zeros(x.shape, dtype=torch.float32)
    for k in range(x.shape[-1]):
        inside = mask[..., k].bool()
        mu = mean[..., k][inside]
        centred = half[..., k][:, inside] - mu
        d = x[..., k][inside].float() - mu.float()
        covariance = (centred.mT @ centred) / (n - 1)
        eye = torch.eye(covariance.shape[0], dtype=torch.float32)
        inverse = torch.linalg.inv(covariance.float() + regularization * eye).to(torch.float16)
        distance = ((d.to(torch.float16) @ inverse).float() * d).sqrt()
        out[..., k][inside] = torch.where(torch.isfinite(distance), distance, torch.zeros_like(distance))
    return out


def _other_inverses(centred: torch.Tensor, regularization: float) -> dict[str, Callable[[torch.Tensor], torch.Tensor]]:
    """Other ways to (fp16 covariance + lambda I)^-1: a -> inverse (float)."""
    n = centred.shape[0]
    r = centred.float()

    def woodbury(a: torch.Tensor) -> torch.Tensor:  # of the unrounded covariance: exact in the reals
        small = r @ r.mT + (n - 1) * regularization * torch.eye(n)
        return (torch.eye(r.shape[1]) - r.mT @ torch.linalg.solve(small, r)) / regularization

    return {
        "Cholesky": lambda a: torch.cholesky_inverse(torch.linalg.cholesky(a)),
        "float64 LU": lambda a: torch.linalg.inv(a.double()),
        "Woodbury, unrounded covariance": woodbury,
    }


class _InverseTimer(TorchFunctionMode):
    """Wall seconds spent in torch.linalg.inv while active."""

    def __init__(self) -> None:
        super().__init__()
        self.seconds = 0.0

    def __torch_function__(self, func: Callable[..., Any], types: object, args: tuple[Any, ...] = (),
                           kwargs: dict[str, Any] | None = None) -> Any:
        start = time.perf_counter()
        result = func(*args, **(kwargs or {}))
        if func is torch.linalg.inv:
            self.seconds += time.perf_counter() - start
        return result


def _timed_run(fn: Callable[[], torch.Tensor]) -> tuple[torch.Tensor, float, float, float]:
    """fn() -> (result, wall s, process CPU s, share of the wall in torch.linalg.inv)."""
    with _InverseTimer() as inverse:
        result, wall, cpu = timed_call(fn)
    return result, wall, cpu, inverse.seconds / wall


def fp16_mhd_report(rounds: int, shape: tuple[int, int, int] = SHAPE) -> str:
    """The fp16 MHD on the central slice: before / after in alternating rounds (the same input,
    bitwise compared), the dense inverse's share of the time, and other inverses' time and
    distance from its scores."""
    x, recs, mask = synthetic_case(10, shape=shape)
    centre = shape[-1] // 2
    x, recs, mask = x[..., centre:centre + 1], recs[..., centre:centre + 1], mask[..., centre:centre + 1]
    inside = mask[..., 0]
    lines = [f"fp16 MHD (precision fp16), one {shape[0]} x {shape[1]} slice, P = {int(inside.sum())} brain pixels, "
             f"N = 10, CPU, torch {torch.__version__}, {torch.get_num_threads()} threads; wall and process-CPU s",
             f"{'round':>5} {'before':>16} {'after':>16} {'before/after':>13} {'inverse share':>14}  bitwise"]
    for fn in (_fp16_scores_before, autocast_fp16_pixel_scores):  # warm-up on a corner (threads, libraries)
        fn(x[:16, :16], recs[:, :16, :16], torch.ones_like(mask[:16, :16]))
    variants = {"before": _fp16_scores_before, "after": autocast_fp16_pixel_scores}
    runs = alternating_rounds({name: lambda fn=fn: _timed_run(lambda: fn(x, recs, mask)) for name, fn in variants.items()},
                              rounds, swap=True)  # alternate which runs first
    for k, ((old, old_wall, old_cpu, _), (new, new_wall, new_cpu, share)) in enumerate(zip(runs["before"], runs["after"])):
        same = torch.equal(old.view(torch.int32), new.view(torch.int32))
        lines.append(f"{k + 1:>5} {old_wall:>7.2f} {old_cpu:>8.2f} {new_wall:>7.2f} {new_cpu:>8.2f} "
                     f"{old_cpu / new_cpu:>13.3f} {share:>14.0%}  {same}")
    ratio = median_ratio((r[2] for r in runs["before"]), (r[2] for r in runs["after"]))
    shares = [r[3] for r in runs["after"]]
    lines.append(f"median before/after (CPU time): {ratio:.3f}; "
                 f"median share of the 'after' wall in torch.linalg.inv: {float(np.median(shares)):.0%}")
    half = recs[..., 0][:, inside].to(torch.float16)
    centred = half - half.mean(0)
    d = x[..., 0][inside] - half.mean(0).float()
    a = ((centred.mT @ centred) / (half.shape[0] - 1)).float()
    a.diagonal().add_(0.01)

    def scores(inverse: torch.Tensor) -> torch.Tensor:
        distance = ((d.to(torch.float16) @ inverse.to(torch.float16)).float() * d).sqrt()
        return torch.where(torch.isfinite(distance), distance, torch.zeros_like(distance))

    reference = scores(torch.linalg.inv(a))
    lu_cpu = best_of(lambda: torch.linalg.inv(a), 1, warm_up=False)[1]
    lines.append(f"{'other inverse of the same matrix':<32} {'CPU / LU':>10} {'scores bitwise':>15} {'max |diff| / max':>17}")
    for name, inverse in _other_inverses(centred, 0.01).items():
        inverse(a[:64, :64].clone())  # warm-up
        cpu = best_of(lambda: inverse(a), 1, warm_up=False)[1]
        other = scores(inverse(a))
        share = float((other == reference).double().mean())
        lines.append(f"{name:<32} {cpu / lu_cpu:>10.2f} {share:>15.4f} "
                     f"{float((other - reference).abs().max() / reference.max()):>17.2e}")
    return "\n".join(lines)


def l1_rows(repeats: int, shape: tuple[int, int, int] = SHAPE) -> list[Row]:
    x, recs, mask = synthetic_case(1, shape=shape)
    scorer = L1Scorer()
    return [row("l1", lambda: scorer(x, recs, mask), repeats)]


def format_table(groups: list[list[Row]]) -> str:
    """Rows 'name | wall ms | CPU ms | wall ratio to the group's first row | note'."""
    head = f"{'scorer':<50} {'wall ms':>10} {'CPU ms':>10} {'ratio':>8}  note"
    lines = [head, "-" * 110]
    for rows in groups:
        base = rows[0][1][0]
        for name, (wall, cpu), note in rows:
            ms = f"{wall * 1e3:>10.1f} {cpu * 1e3:>10.1f}"
            lines.append(f"{name:<50} {ms} {wall / base:>7.2f}x  {note}")
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--dense-slices", type=int, default=2,
                        help="slices timed for the dense inverse (50 = whole volume)")
    parser.add_argument("--quick", action="store_true", help=f"a {QUICK_SHAPE} volume, one run, one dense slice")
    parser.add_argument("--fp16-mhd", action="store_true",
                        help="only the fp16 MHD path: before vs after, alternating rounds, and other inverses")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds of --fp16-mhd")
    args = parser.parse_args(argv)
    shape = QUICK_SHAPE if args.quick else SHAPE
    if args.quick:
        args.repeats, args.dense_slices, args.rounds = 1, 1, 1
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    if args.fp16_mhd:
        with torch.no_grad():
            print(fp16_mhd_report(args.rounds, shape))
        return
    with torch.no_grad():
        groups = [l1_rows(args.repeats, shape), ssim_rows(args.repeats, shape),
                  mahalanobis_rows(args.repeats, args.dense_slices, shape)]
    header = (f"volume {shape} float32, CPU, torch {torch.__version__}, "
              f"{torch.get_num_threads()} threads, best of {args.repeats} runs; "
              "ratio = wall time / first row of the group")
    print(header)  # a command-line report: printing is its job
    print(format_table(groups))


if __name__ == "__main__":
    main()
