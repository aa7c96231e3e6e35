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
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import resource
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch

from model_zoo.diffusion_models import DDPM, ConditionalDDPM, EncoderSettings, NoiseSettings, ReconstructionSettings
from model_zoo.unet_adm import UNetArchitecture

if TYPE_CHECKING:
    from core.config.builder import ComponentBuilder
    from core.evaluation.settings import DataRoles

VOLUME_SLICES = 50
SIZE = 96
TINY = dict(image_size=32, unet=UNetArchitecture(base_channels=32, num_res_blocks=1))  # --tiny: checks the script runs, not the paper's cost


def _sizes(args: argparse.Namespace) -> dict:
    """Size arguments: the paper's (only image_size differs from the defaults) or --tiny's."""
    return dict(TINY) if args.tiny else dict(image_size=SIZE)


def _cddpm_sizes(args: argparse.Namespace) -> dict:
    encoder = EncoderSettings(arch="resnet18", cond_dim=64) if args.tiny else EncoderSettings(cond_dim=512)
    return {**_sizes(args), "encoder": encoder}


def _peak_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KB on Linux


def _measure(fn: Callable[[], object], device: torch.device, repeats: int = 1) -> tuple[float, float, float]:
    """(wall seconds, process CPU seconds, peak-memory growth in MB): the fastest of ``repeats`` calls.

    One untimed call first, so that each case pays its own allocator growth and first-touch
    page faults outside the timing (a larger batch than the previous case's would otherwise).
    """
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    before = 0.0 if device.type == "cuda" else _peak_mb(device)
    fn()
    best_wall = best_cpu = float("inf")
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        best_wall = min(best_wall, time.perf_counter() - wall)
        best_cpu = min(best_cpu, time.process_time() - cpu)
    return best_wall, best_cpu, _peak_mb(device) - before


def _reconstruction_rows(args: argparse.Namespace, device: torch.device) -> list[dict]:
    torch.manual_seed(0)
    ddpm = DDPM(**_sizes(args), max_batch_size=args.max_batch).to(device).eval()
    size = _sizes(args)["image_size"]
    x = torch.rand(args.slices, 1, size, size, device=device)
    scale = VOLUME_SLICES / args.slices
    rows = []

    def run(name: str, passes: int, fn: Callable[[], object], note: str = "") -> float:
        seconds, cpu, mem = _measure(fn, device, args.repeats)
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
    cddpm = ConditionalDDPM(**_cddpm_sizes(args), max_batch_size=args.max_batch).to(device).eval()
    run("cDDPM ENS (+ResNet-50)", 3 * VOLUME_SLICES, mode(cddpm, "ensemble"))
    rows.append(dict(case="ratio ENS 3 passes / batched", ratio=ens3 / ens))
    rows.append(dict(case=f"ratio DDPM-500 / DDIM-{args.ddim_steps}", ratio=500 * one / ddim))
    return rows


def _training_rows(args: argparse.Namespace, device: torch.device) -> list[dict]:
    rows = []
    for name, cls, sizes in (("DDPM", DDPM, _sizes(args)), ("cDDPM", ConditionalDDPM, _cddpm_sizes(args))):
        torch.manual_seed(0)
        model = cls(**sizes).to(device).train()
        opt = torch.optim.Adam(model.parameters(), lr=1e-4)
        x = torch.rand(args.train_batch, 1, sizes["image_size"], sizes["image_size"], device=device)

        def step(model: torch.nn.Module = model, opt: torch.optim.Optimizer = opt, x: torch.Tensor = x) -> None:
            opt.zero_grad(set_to_none=True)
            model.training_loss(x)["loss"].backward()
            opt.step()

        seconds, cpu, mem = _measure(lambda: [step() for _ in range(args.train_steps)], device)
        rate = args.train_batch * args.train_steps / seconds
        rows.append(dict(case=f"{name} training (batch {args.train_batch})", rate=rate, cpu=cpu, mem=mem))
    return rows


def _randomize_zero_layers(net: torch.nn.Module, seed: int = 0) -> None:
    """Give ADM's zero-initialised output layers small random weights: an untrained UNet's
    output is identically zero, which would make any output comparison vacuous."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():
            if not p.any():
                p.copy_(torch.randn(p.shape, generator=g) * 0.02)


def cpu_speed(args: argparse.Namespace) -> None:
    """Paper UNet one-step reconstruction on CPU, same weights and batch: plain eager fp32
    (= the originals bitwise) against channels-last and, with --compile, torch.compile
    (inductor, frozen weights) on channels-last, in alternating rounds; CPU seconds per
    round, the median ratio to eager, the largest output difference (must stay <= 1e-5),
    the compile time and the number of 50-slice volumes after which compiling has paid
    for itself. (A frozen TorchScript graph measured 1.07x, slower than eager: dropped.)"""
    import copy
    import os
    import statistics
    import tempfile

    from torch.utils.flop_counter import FlopCounterMode

    from core.evaluation.unet_compile import compile_unet

    torch.manual_seed(0)
    ddpm = DDPM(**_sizes(args), max_batch_size=None).eval()
    net = ddpm.unet
    _randomize_zero_layers(net)
    size = _sizes(args)["image_size"]
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
        cpu_times: dict[str, list[float]] = {k: [] for k in variants}
        wall_times: dict[str, list[float]] = {k: [] for k in variants}
        for _ in range(args.rounds):
            for name, fn in variants.items():
                wall, cpu = time.perf_counter(), time.process_time()
                fn()
                cpu_times[name].append(time.process_time() - cpu)
                wall_times[name].append(time.perf_counter() - wall)
    base = statistics.median(cpu_times["eager fp32"])
    print(f"{'tiny' if args.tiny else 'paper'} UNet one-step, {args.slices} slices, {flops.get_total_flops() / 1e9:.0f} GFLOP per slice, "
          f"CPU threads={torch.get_num_threads()}, {args.rounds} alternating rounds; output max |eager| = {scale:.3g}")
    print("| variant | CPU s per round | median ratio to eager | max abs diff |")
    print("|---|---|---|---|")
    for name in variants:
        print(f"| {name} | {', '.join(f'{v:.2f}' for v in cpu_times[name])} | "
              f"{statistics.median(cpu_times[name]) / base:.3f} | {diffs[name]:.1e} |")
    if compile_s is not None:
        per_volume = VOLUME_SLICES / args.slices
        saved = (statistics.median(wall_times["eager fp32"]) - statistics.median(wall_times["compiled + channels-last"]))
        saved *= per_volume
        cache = "empty" if args.cold_compile else "as found"
        payoff = f"pays off after {compile_s / saved:.1f} volumes" if saved > 0 else "never pays off at this size"
        print(f"compile: {compile_s:.0f} s wall (inductor cache {cache}); saves {saved:.1f} s wall per "
              f"{VOLUME_SLICES}-slice one-step volume: {payoff}")


def _paper_models(args: argparse.Namespace) -> tuple[DDPM, ConditionalDDPM]:
    """The paper configs' DDPM and cDDPM (projects/*/configs/*_paper.yaml) with random weights, zero layers randomised."""
    torch.manual_seed(0)
    paper = dict(max_batch_size=args.max_batch, noise_source=NoiseSettings(kind="opensimplex"),
                 reconstruction=ReconstructionSettings(clamp=False))
    ddpm = DDPM(**_sizes(args), **paper).eval()
    cddpm = ConditionalDDPM(**_cddpm_sizes(args), **paper).eval()
    for model in (ddpm, cddpm):
        _randomize_zero_layers(model.unet)
    return ddpm, cddpm


def _method_cases(ddpm: DDPM | None, cddpm: ConditionalDDPM | None, slices: int
                  ) -> dict[str, tuple[torch.nn.Module, int, object]]:
    """{method: (model, reconstructions per slice, scorer)} as the paper configs evaluate them
    (projects/*/configs/*_paper.yaml): one UNet batch per call, capped by the model's max_batch_size.
    The DDPM's rows need a DDPM, the cDDPM's a cDDPM (a checkpoint holds one of them)."""
    from optim.scoring import L1Scorer, MahalanobisScorer, SSIMEnsembleScorer

    cases: dict[str, tuple[torch.nn.Module, int, object]] = {}
    if ddpm is not None:
        one = copy.deepcopy(ddpm)
        one.reconstruction_mode, one.t_test = "one_step", 500
        ssim_dims = 3 if slices >= 13 else 2  # the 3D SSIM window (13) needs 13 slices; fewer: per slice
        cases["DDPM one-step (L1)"] = (one, 1, L1Scorer())
        cases[f"DDPM + SSIM ensemble ({ssim_dims}D)"] = (one, 1, SSIMEnsembleScorer(spatial_dims=ssim_dims))
    if cddpm is not None:
        ens, one = copy.deepcopy(cddpm), copy.deepcopy(cddpm)
        ens.reconstruction_mode = "ensemble"
        one.reconstruction_mode, one.t_test = "one_step", 499
        cases["cDDPM ENS (3 levels, L1)"] = (ens, 1, L1Scorer())
        cases["cDDPM + MHD (10 one-step)"] = (one, 10, MahalanobisScorer(num_reconstructions=10))
    return cases


def _load_weights(path: str, *models: torch.nn.Module) -> list[torch.nn.Module]:
    """A checkpoint's `model_weights` into each model it fits (a DDPM or cDDPM of the paper size without a
    stored config); the models it fitted. None fitting is an error, never a silent run on random weights."""
    state = torch.load(path, map_location="cpu", weights_only=True)["model_weights"]
    fitted = [m for m in models if set(state) == set(m.state_dict())]
    if not fitted:
        raise SystemExit(f"{path}: its weights fit neither the paper-size DDPM nor the cDDPM, and it stores no config "
                         "to build its own model from")
    for model in fitted:
        model.load_state_dict(state)
    return fitted


def _checkpoint_case(args: argparse.Namespace) -> tuple[DDPM | None, ConditionalDDPM | None, Any, str, int]:
    """`--weights`: the checkpoint's own model (a self-describing checkpoint: built from its stored config; else
    loaded into the paper-size models), a volume it was evaluated on (`evaluated_volume`) and the slice size
    (for a synthetic volume where it names no test set)."""
    from core.config.builder import MODEL, ComponentBuilder
    from core.run import checkpoint_metadata
    from dl_utils.checkpoint import load_checkpoint
    from dl_utils.weights import load_model_weights

    state = load_checkpoint(args.weights)
    if not isinstance(state.get("config"), dict):  # a bare checkpoint: the paper sizes, on the synthetic volume
        ddpm, cddpm = _paper_models(args)
        fitted = _load_weights(args.weights, ddpm, cddpm)
        return (ddpm if ddpm in fitted else None), (cddpm if cddpm in fitted else None), None, "", _sizes(args)["image_size"]
    builder = ComponentBuilder(f"{args.weights} (stored config)")
    config = builder.upgrade(checkpoint_metadata.read(state, args.weights))
    model = builder.build(config["model"], "model", expected=MODEL)
    load_model_weights(model, state, args.weights)
    model.eval()
    size = int((config["model"].get("params") or {}).get("image_size", SIZE))
    volume, where = evaluated_volume(builder, config, args.slices)
    if isinstance(model, ConditionalDDPM):
        return None, model, volume, where, size
    if isinstance(model, DDPM):
        return model, None, volume, where, size
    raise SystemExit(f"{args.weights}: a {type(model).__name__}, not a DDPM or cDDPM")


def labelled_test_set(builder: ComponentBuilder, spec: Any, key: str) -> str | None:
    """The first test set of downstream task `spec` as its evaluator sees it: a data set that plays no
    role (not the healthy validation / test set, a labelled validation set or the fit set), read from the
    task's typed `roles` (`DataRoles.test_sets`; flat keys of earlier configs upgraded), whatever the data
    sets are called; None for a task that is not an anomaly-detection evaluation or has no test set."""
    from core.evaluation.evaluator import AnomalyDetectionEvaluator

    if not isinstance(spec, dict) or not isinstance(spec.get("data_loader"), dict):
        return None
    if not issubclass(builder.resolve_class(spec, key), AnomalyDetectionEvaluator):
        return None
    roles: DataRoles = builder.build_param(spec, key, "roles")
    test_sets = roles.test_sets(list(spec["data_loader"].get("datasets") or {}))
    return test_sets[0] if test_sets else None


def evaluated_volume(builder: ComponentBuilder, config: dict[str, Any], slices: int) -> tuple[Any, str]:
    """The central `slices` slices of the first volume of the first labelled test set (`labelled_test_set`)
    of the first task that has one, loaded as its evaluation loads it, and where it came from; (None, '')
    when no task names a test set."""
    from types import SimpleNamespace

    from core.config.configurator import shared_values
    from core.run.assembly import build_datasets

    for task, spec in (config.get("downstream_tasks") or {}).items():
        key = f"downstream_tasks.{task}"
        name = labelled_test_set(builder, spec, key)
        if name is None:
            continue
        loader = {**spec["data_loader"], "datasets": {name: spec["data_loader"]["datasets"][name]}}
        found = build_datasets(builder, loader, f"{key}.data_loader", shared_values(config))[name][0]
        depth = found.image.shape[-1]
        start = max(0, (depth - slices) // 2)
        keep = slice(start, start + slices)
        volume = SimpleNamespace(name=found.name, image=found.image[..., keep], mask=found.mask[..., keep])
        return volume, f"test volume {found.name} of {task} / {name}, slices {start}-{start + volume.image.shape[-1] - 1}"
    return None, ""


def _s(seconds: float) -> str:
    """Seconds for a table: whole from 10 on, one decimal below (a demo-size model's scan takes a few)."""
    return f"{seconds:.0f}" if seconds >= 10 else f"{seconds:.1f}"


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
    import statistics
    from types import SimpleNamespace

    from benchmarks.bench_scorers import synthetic_case
    from core.evaluation.pipeline import InferenceSettings, ScoringPipeline, ScoringSpec
    from core.evaluation.reconstruction import Precision, resolve_precision
    from dl_utils.device import cpu_bf16_native

    volume, where, size = None, "", _sizes(args)["image_size"]
    if args.weights:
        ddpm, cddpm, volume, where, size = _checkpoint_case(args)
    else:
        ddpm, cddpm = _paper_models(args)
    if volume is None:
        image, _, mask = synthetic_case(1, shape=(size, size, args.slices))
        volume = SimpleNamespace(name="synthetic", image=image, mask=mask)
        where = f"synthetic {size} x {size} x {args.slices} volume"
    slices = volume.image.shape[-1]
    cases = _method_cases(ddpm, cddpm, slices)
    cpu = torch.device("cpu")

    def pipeline(name: str, precision: str, compiled: bool = False) -> ScoringPipeline:
        model, _, scorer = cases[name]
        inference = InferenceSettings(slice_batch_size=slices, precision=precision, channels_last=True,
                                      compile_unet=compiled, unet_batch_size=None)
        return ScoringPipeline(copy.deepcopy(model) if compiled else model, ScoringSpec(scorer, inference=inference), cpu, seed=0)

    def timed(scoring: ScoringPipeline, seed: int) -> tuple[torch.Tensor, float, float]:
        wall, cpu_s = time.perf_counter(), time.process_time()
        amap = scoring.score(volume, "bench", seed).amap
        return torch.from_numpy(amap), time.process_time() - cpu_s, time.perf_counter() - wall

    def score(name: str, precision: str, seed: int) -> tuple[torch.Tensor, float, float]:
        """The evaluator's scoring of the volume (eager: compile_unet off), noise seeded by `seed`."""
        scoring = pipeline(name, precision)
        with scoring.prepared():
            return timed(scoring, seed)

    brain = volume.mask.bool()

    def row(name: str, passes: int, run: Callable[[str, int], tuple[torch.Tensor, float, float]]) -> None:
        """Alternating rounds of fp32 and bf16 through `run(precision, seed)`; one printed table row."""
        times: dict[str, list[tuple[float, float]]] = {"fp32": [], "bf16": []}
        maps = {}
        run("fp32", 0)  # warm-up: allocator growth and first-touch page faults outside the timing
        for _ in range(args.rounds):
            for precision in ("fp32", "bf16"):
                amap, cpu_s, wall = run(precision, 0)
                times[precision].append((cpu_s, wall))
                maps[precision] = amap
        other_seed, _, _ = run("fp32", 1)
        level = float(maps["fp32"][brain].abs().mean())
        d_bf16 = float((maps["bf16"] - maps["fp32"])[brain].abs().mean()) / level
        d_seed = float((other_seed - maps["fp32"])[brain].abs().mean()) / level
        ratio = statistics.median(b[0] / f[0] for f, b in zip(times["fp32"], times["bf16"]))
        med = {p: [statistics.median(t[i] for t in times[p]) * per_scan for i in (0, 1)] for p in times}
        print(f"| {name} | {passes} | {_s(med['fp32'][0])} | {_s(med['bf16'][0])} | {ratio:.2f} | {_s(med['fp32'][1])} | "
              f"{_s(med['bf16'][1])} | {d_bf16:.2%} | {d_seed:.2%} | {'yes' if d_bf16 < d_seed else 'NO'} |", flush=True)

    per_scan = VOLUME_SLICES / slices
    weights = f"checkpoint {args.weights}" if args.weights else "random weights, zero layers randomised"
    size_name = "checkpoint's" if args.weights else "tiny" if args.tiny else "paper"
    print(f"CPU precision: {size_name} UNets ({weights}), {where}, threads={torch.get_num_threads()}, "
          f"{args.rounds} alternating rounds; times scaled x{per_scan:.3g} to a {VOLUME_SLICES}-slice scan")
    native = cpu_bf16_native()
    print(f"default here: `precision: auto` runs these diffusion methods in {resolve_precision(Precision.AUTO, cpu, True)} "
          f"on this CPU (bf16 units: {'yes' if native else 'no' if native is False else 'not reported'}; "
          "auto = bf16 where the CPU has them, the maps staying within the noise column below), the AE and RA in fp32")
    print("| method | UNet passes / scan | fp32 CPU s / scan | bf16 CPU s / scan | bf16 / fp32 (median CPU ratio) | "
          "fp32 wall s / scan | bf16 wall s / scan | map diff bf16 vs fp32 | map diff fp32 seed vs seed | bf16 within noise |")
    print("|---|---|---|---|---|---|---|---|---|---|")
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


def _print(rows: list[dict], args: argparse.Namespace, device: torch.device) -> None:
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


def main(argv: list[str] | None = None) -> None:
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
        rows = _reconstruction_rows(args, device)
    rows += _training_rows(args, device)
    _print(rows, args, device)


if __name__ == "__main__":
    main()
