"""The timing harness the benchmarks share: one timed call, the best of N calls, alternating
rounds of variants, the median of per-round ratios and peak memory. No assertions on time."""
from __future__ import annotations

import resource
import statistics
import time
from collections.abc import Callable, Iterable, Mapping
from typing import TypeVar

import torch

T = TypeVar("T")


def timed_call(fn: Callable[[], T]) -> tuple[T, float, float]:
    """fn() -> (its result, wall seconds, process CPU seconds). Process CPU time is what a busy
    shared machine disturbs less than wall time."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn()
    return result, time.perf_counter() - wall, time.process_time() - cpu


def best_of(fn: Callable[[], object], repeats: int, warm_up: bool = True,
            sync: Callable[[], None] | None = None) -> tuple[float, float]:
    """The best (wall, process CPU) seconds of `repeats` calls, after one untimed call when
    `warm_up` (allocator growth and first-touch page faults stay outside the timing); `sync`
    (a CUDA synchronise) ends each timed call. The best, not the median: other jobs may share
    the machine."""
    call = fn if sync is None else lambda: (fn(), sync())
    if warm_up:
        fn()
    best_wall = best_cpu = float("inf")
    for _ in range(repeats):
        _, wall, cpu = timed_call(call)
        best_wall, best_cpu = min(best_wall, wall), min(best_cpu, cpu)
    return best_wall, best_cpu


def alternating_rounds(variants: Mapping[str, Callable[[], T]], rounds: int, swap: bool = False) -> dict[str, list[T]]:
    """`rounds` rounds, each calling every variant once in the given order (reversed in odd rounds
    when `swap`), so that load which drifts during a run hits every variant alike; each variant's
    results, round by round."""
    results: dict[str, list[T]] = {name: [] for name in variants}
    order = list(variants.items())
    for k in range(rounds):
        for name, fn in order if not swap or k % 2 == 0 else order[::-1]:
            results[name].append(fn())
    return results


def median_ratio(numerators: Iterable[float], denominators: Iterable[float]) -> float:
    """The median of the per-round ratios numerator / denominator (rounds paired in order)."""
    return statistics.median(n / d for n, d in zip(numerators, denominators))


def max_rss_mb() -> float:
    """This process's peak resident memory so far, in MB (ru_maxrss is in KB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def peak_mb(device: torch.device) -> float:
    """Peak memory in MB: torch.cuda.max_memory_allocated on CUDA, else the process's max RSS."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return max_rss_mb()
