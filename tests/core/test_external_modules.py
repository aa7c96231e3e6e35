"""Only this project's classes are built unless the command line says otherwise, and a class that
does not fit its role is refused before it is constructed (core.config.builder.ComponentBuilder)."""
from __future__ import annotations

import pytest

from core.commands.cli import build_parser
from core.config.builder import BINARY_STEP, LOSS, MAP_STEP, MODEL, SCORER, ComponentBuilder
from core.config.configurator import ConfigError, validate_top_level
from core.Main import parse_args


def _popen(marker) -> dict:
    return {"module_name": "subprocess", "class_name": "Popen", "params": {"args": ["touch", str(marker)]}}


@pytest.mark.parametrize("role, key, message", [
    (MODEL, "model", "subprocess.Popen is not a Module"),
    (SCORER, "downstream_tasks.d.params.scorer", r"subprocess.Popen is not a scorer \(it lacks __call__, num_reconstructions of "
                                                 r"optim.scoring.base.Scorer\)"),
    (MAP_STEP, "downstream_tasks.d.params.map_postprocessing[0]", "subprocess.Popen is not a MapStep .subclass optim.contracts.MapStep"),
    (BINARY_STEP, "downstream_tasks.d.params.binary_postprocessing[0]", "is not a BinaryStep .subclass optim.contracts.BinaryStep"),
    (LOSS, "trainer.params.loss", "is not a TrainingLoss .subclass optim.contracts.TrainingLoss to use it as the training loss"),
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
    assert len(ComponentBuilder("c.yaml").build_value([SMALL], "steps", role=BINARY_STEP)) == 1
    assert callable(ComponentBuilder("c.yaml").build_value(LOSS_L2, "loss", role=LOSS))


def _spec(module: str, name: str, **params) -> dict:
    return {"module_name": module, "class_name": name, "params": params}


L1 = _spec("optim.scoring.l1", "L1Scorer")
LOSS_L2 = _spec("optim.losses.reconstruction", "ReconstructionLoss", kind="l2")
DECODER = _spec("model_zoo.spark", "LightDecoder", width=8, stages=1)
MEDIAN = _spec("optim.postprocessing", "MedianFilter", kernel_size=3)
SMALL = _spec("optim.postprocessing", "RemoveSmallComponents", min_size=8)


@pytest.mark.parametrize("role, spec, message", [
    (LOSS, L1, "optim.scoring.l1.L1Scorer is not a TrainingLoss"),
    (LOSS, DECODER, "model_zoo.spark.LightDecoder is not a TrainingLoss"),
    (MAP_STEP, LOSS_L2, "optim.losses.reconstruction.ReconstructionLoss is not a MapStep"),
    (MAP_STEP, L1, "optim.scoring.l1.L1Scorer is not a MapStep"),
    (MAP_STEP, SMALL, "optim.postprocessing.RemoveSmallComponents is not a MapStep"),
    (MAP_STEP, DECODER, "model_zoo.spark.LightDecoder is not a MapStep"),
    (BINARY_STEP, MEDIAN, "optim.postprocessing.MedianFilter is not a BinaryStep"),
    (BINARY_STEP, L1, "optim.scoring.l1.L1Scorer is not a BinaryStep"),
    (SCORER, LOSS_L2, r"ReconstructionLoss is not a scorer \(it lacks num_reconstructions"),
    (SCORER, MEDIAN, r"MedianFilter is not a scorer \(it lacks num_reconstructions"),
])
def test_a_project_class_of_another_kind_is_refused_by_its_role(role, spec, message, monkeypatch):
    """A callable is not enough: a scorer, a loss, a step or a model in another's place is refused on the class."""
    import optim.scoring.l1

    def never(*args, **kwargs):
        raise AssertionError("constructed")

    monkeypatch.setattr(optim.scoring.l1.L1Scorer, "__init__", never)
    with pytest.raises(ConfigError, match=message):
        ComponentBuilder("c.yaml").build_value(spec, "x", role=role)


@pytest.mark.parametrize("params, key, message", [
    ({"loss": L1}, "trainer.params.loss", "optim.scoring.l1.L1Scorer is not a TrainingLoss"),
    ({"loss": DECODER}, "trainer.params.loss", "model_zoo.spark.LightDecoder is not a TrainingLoss"),
])
def test_the_trainer_refuses_a_loss_of_another_kind_by_its_hint(params, key, message):
    spec = {"module_name": "core.training.trainer", "class_name": "Trainer", "params": params}
    with pytest.raises(ConfigError, match=f"c.yaml: {key}: {message}"):
        ComponentBuilder("c.yaml").check(spec, "trainer", reserved=("context",))


@pytest.mark.parametrize("scoring, message", [
    ({"map_postprocessing": [LOSS_L2]}, r"map_postprocessing: \[0\]: optim.losses.reconstruction.ReconstructionLoss is not a MapStep"),
    ({"map_postprocessing": [MEDIAN, DECODER]}, r"map_postprocessing: \[1\]: model_zoo.spark.LightDecoder is not a MapStep"),
    ({"binary_postprocessing": [L1]}, r"binary_postprocessing: \[0\]: optim.scoring.l1.L1Scorer is not a BinaryStep"),
    ({"binary_postprocessing": [MEDIAN]}, r"binary_postprocessing: \[0\]: optim.postprocessing.MedianFilter is not a BinaryStep"),
    ({"map_postprocessing": [SMALL]}, r"map_postprocessing: \[0\]: optim.postprocessing.RemoveSmallComponents is not a MapStep"),
])
def test_the_evaluator_refuses_a_step_of_another_kind_by_its_hint(scoring, message):
    spec = {"module_name": "core.evaluation.evaluator", "class_name": "AnomalyDetectionEvaluator",
            "params": {"scoring": {"scorer": L1, **scoring}}}
    with pytest.raises(ConfigError, match=message):
        ComponentBuilder("c.yaml").check(spec, "downstream_tasks.d", reserved=("context",))


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
