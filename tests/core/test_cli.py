"""The `uad` console script: declared in pyproject.toml, `--help` on every verb, one-line errors."""
import importlib
import tomllib
from pathlib import Path

import pytest

from core.commands.cli import build_parser, main

ROOT = Path(__file__).resolve().parents[2]
VERBS = ("train", "test", "predict", "preprocess", "benchmark", "convert", "describe", "report")


def test_console_script_entry_resolves():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    module, function = project["scripts"]["uad"].split(":")
    assert getattr(importlib.import_module(module), function) is main
    names = {d.split("==")[0].lower() for d in project["dependencies"]}
    pins = {l.split("==")[0].lower() for l in (ROOT / "requirements.txt").read_text().splitlines() if "==" in l}
    assert names <= pins  # every declared dependency is pinned in requirements.txt
    assert (ROOT / "LICENSE").read_text().startswith("MIT License")


@pytest.mark.parametrize("verb", VERBS)
def test_every_verb_has_help(verb, capsys):
    with pytest.raises(SystemExit) as info:
        main([verb, "--help"])
    assert info.value.code == 0
    assert f"usage: uad {verb}" in capsys.readouterr().out


def test_top_level_help_lists_every_verb(capsys):
    help_text = build_parser().format_help()
    assert all(v in help_text for v in VERBS)


def test_bad_input_is_one_line_exit_2(tmp_path, capsys):
    assert main(["train", "--config_path", str(tmp_path / "missing.yaml")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ")
    assert main(["test"]) == 2
    assert "exactly one of" in capsys.readouterr().err
    assert main(["preprocess", "--input", str(tmp_path / "none"), "--output", str(tmp_path / "o")]) == 2
    assert not (tmp_path / "o").exists()


def test_preprocess_values_have_documented_ranges(capsys):
    """--workers at most twice the CPUs (the bound --help states), --seed 0..2**63 - 1, --spacing 0.25..10 mm: a value
    outside is argparse's one line before any subject runs (small numbers only: nothing is forked here)."""
    from core.commands import arg_types

    cap = arg_types.MAX_PROCESS_WORKERS
    assert cap == arg_types.WORKERS_PER_CPU * arg_types.usable_cpus() >= 2
    assert arg_types.process_workers(str(cap)) == cap
    parser = build_parser()
    base = ["preprocess", "--input", "raw", "--output", "pre"]
    for extra, words in ((["--workers", str(cap + 1)], f"<= {cap} "), (["--seed=-1"], "--seed: expected an integer >= 0"),
                         (["--seed", str(2**63)], str(2**63 - 1)), (["--spacing", "1e9"], "<= 10, got '1e9'"),
                         (["--spacing", "0.2"], "mm >= 0.25")):
        with pytest.raises(SystemExit) as info:
            parser.parse_args([*base, *extra])
        err = capsys.readouterr().err.strip().splitlines()
        assert info.value.code == 2 and len(err) == 1 and words in err[0], err
    args = parser.parse_args([*base, "--seed", str(2**63 - 1), "--spacing", "0.25", "--workers", "1"])
    assert (args.seed, args.spacing, args.workers) == (2**63 - 1, 0.25, 1)
    with pytest.raises(SystemExit):
        main(["preprocess", "--help"])
    assert f"at most {arg_types.WORKERS_PER_CPU} per CPU: {cap} here" in " ".join(capsys.readouterr().out.split())


def test_data_package_is_ours_from_any_folder(tmp_path):
    """deepbet's wheel puts a namespace folder `data/` into site-packages. setup.sh installs this
    project in setuptools' compat editable mode (the repository root on sys.path through a .pth), so
    from any folder, without PYTHONPATH, `data` is this repository's regular package, not that folder."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    code = "import data, data.raw_preprocessing.pipeline; assert data.__file__, data.__path__; print(data.__file__)"
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-500:]
    assert proc.stdout.strip().endswith(os.path.join("data", "__init__.py"))


def test_test_model_writes_where_the_command_says_not_where_the_checkpoint_says(tmp_path, monkeypatch):
    """A shared checkpoint's stored output_root is ignored: the run folder goes to --output_root, default ./runs."""
    import yaml

    from core.commands.cli import main as uad
    from tests.reliability.cases import _shared_checkpoint
    from tests.reliability.project import make_training_project

    config = yaml.safe_load(make_training_project(tmp_path / "project").read_text())
    elsewhere = tmp_path / "elsewhere"
    checkpoint = _shared_checkpoint(tmp_path / "project", config, output_root=str(elsewhere))
    monkeypatch.chdir(tmp_path)
    assert uad(["test", "--model", checkpoint, "--quiet"]) == 0
    assert not elsewhere.exists() and list((tmp_path / "runs").glob("*/*/*/results.json"))


def test_predict_precision_choices_are_the_precision_options():
    from core.evaluation.reconstruction import Precision

    verbs = next(a for a in build_parser()._actions if a.dest == "verb")
    option = next(a for a in verbs.choices["predict"]._actions if a.dest == "precision")
    assert list(option.choices) == [p.value for p in Precision]
