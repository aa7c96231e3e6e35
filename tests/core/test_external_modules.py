"""Only this project's classes are built unless the command line says otherwise, and a class that
does not fit its role is refused before it is constructed (core.config.builder.ComponentBuilder)."""
from __future__ import annotations

import pytest

from core.commands.cli import build_parser
from core.config.builder import MAP_STEP, MODEL, SCORER, ComponentBuilder
from core.config.configurator import ConfigError, validate_top_level
from core.Main import parse_args


def _popen(marker) -> dict:
    return {"module_name": "subprocess", "class_name": "Popen", "params": {"args": ["touch", str(marker)]}}


@pytest.mark.parametrize("role, key, message", [
    (MODEL, "model", "subprocess.Popen is not a Module"),
    (SCORER, "downstream_tasks.d.params.scorer", r"subprocess.Popen is not a scorer \(it defines no __call__\)"),
    (MAP_STEP, "downstream_tasks.d.params.map_postprocessing[0]", "is not a post-processing step"),
])
def test_wrong_kind_is_refused_before_construction_even_when_allowed(tmp_path, role, key, message):
    marker = tmp_path / "PWNED"
    with pytest.raises(ConfigError, match=message):
        ComponentBuilder("c.yaml", allow_external_modules=True).build_value(_popen(marker), key, role=role)
    assert not marker.exists()


def test_external_class_needs_the_flag(tmp_path):
    marker = tmp_path / "PWNED"
    with pytest.raises(ConfigError, match="'subprocess' is outside this project's packages .*; pass --allow-external-modules"):
        ComponentBuilder("c.yaml").build_value(_popen(marker), "model", role=MODEL)
    assert not marker.exists()


def test_a_class_imported_into_a_project_module_is_not_a_project_class():
    spec = {"module_name": "core.predict", "class_name": "Path", "params": {}}  # pathlib.Path, imported there
    with pytest.raises(ConfigError, match="core.predict.Path is defined in 'pathlib', outside this project's packages"):
        ComponentBuilder("c.yaml").build(spec, "x")


def test_project_classes_of_the_right_role_build():
    spec = {"module_name": "optim.scoring.l1", "class_name": "L1Scorer", "params": {}}
    assert callable(ComponentBuilder("c.yaml").build_value(spec, "scorer", role=SCORER))
    steps = [{"module_name": "optim.postprocessing", "class_name": "MedianFilter", "params": {"kernel_size": 3}}]
    assert len(ComponentBuilder("c.yaml").build_value(steps, "steps", role=MAP_STEP)) == 1


@pytest.mark.parametrize("value", [True, False])
def test_a_config_key_cannot_grant_the_opt_in(value):
    config = {"name": "x", "experiment": {"name": "x"}, "model": {}, "allow_external_modules": value}
    with pytest.raises(ConfigError, match="c.yaml: allow_external_modules: is not a config key.*pass --allow-external-modules"):
        validate_top_level(config, "c.yaml")


@pytest.mark.parametrize("argv", [
    ["train", "--config_path", "c.yaml"], ["test", "--model", "m.pt"], ["benchmark"],
    ["predict", "--model", "m.pt", "--input", "i", "--output", "o"],
    ["convert", "--input", "a.ckpt", "--output", "b.pt"], ["cv", "--config_path", "c.yaml", "--folds", "0"],
])
def test_every_verb_that_builds_components_takes_the_flag(argv):
    parser = build_parser()
    assert parser.parse_args(argv).allow_external_modules is False
    assert parser.parse_args([*argv, "--allow-external-modules"]).allow_external_modules is True
    assert parse_args(["--config_path", "c.yaml", "--allow-external-modules"]).allow_external_modules is True
