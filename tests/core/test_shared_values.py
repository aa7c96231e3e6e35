"""The config's top-level `data_root` and `preprocessing` (`SHARED_KEYS`): stated once, given to every data
loader that takes them and does not set its own, checked where the config states them, carried by checkpoints."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from core.config.builder import ComponentBuilder
from core.config.configurator import load_config, run_seed, shared_values
from core.run.assembly import build_data_module, build_datasets
from core.run.checkpoint_metadata import complete_config
from core.run.config_check import check_config
from data.preprocessing import VolumePreprocessor
from dl_utils.errors import UserInputError
from tests.reliability.project import make_training_project

ROOT = Path(__file__).resolve().parents[2]
DEMO_DATA = ROOT / "projects/common/demo_data.yaml"
DEMO_CONFIGS = [p for p in sorted(ROOT.glob("projects/*/configs/*.yaml")) if "_paper" not in p.name and "benchmark" not in p.parts]
SHARED = {"crop_shape": None, "percentiles": None, "target_shape": None}


def _shared_project(tmp_path: Path) -> Path:
    """The tiny training project with `data_root` and `preprocessing` stated once, at the top level."""
    path = make_training_project(tmp_path, epochs=1)
    config = yaml.safe_load(path.read_text())
    loaders = [config["trainer"]["data_loader"], config["downstream_tasks"]["detection"]["data_loader"]]
    config["data_root"] = loaders[0]["params"]["data_root"]
    config["preprocessing"] = SHARED
    for loader in loaders:
        del loader["params"]["data_root"], loader["params"]["preprocessing"]
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


@pytest.mark.parametrize("path", DEMO_CONFIGS, ids=lambda p: p.stem)
def test_the_demo_data_place_and_preprocessing_are_stated_once(path):
    """Every demo config reads its data from demo_data.yaml's folder in its one way: no loader sets its own."""
    sources: list[Path] = []
    config = load_config(path, sources)
    assert DEMO_DATA.resolve() in [s.resolve() for s in sources]
    demo = yaml.safe_load(DEMO_DATA.read_text())
    assert {k: config[k] for k in ("data_root", "preprocessing")} == demo
    for own in (path, *[s for s in sources if s.resolve() != DEMO_DATA.resolve()]):
        text = own.read_text()
        assert "preprocessing:" not in text and "data_root:" not in text, own


def test_every_loader_takes_the_shared_values_unless_it_sets_its_own(tmp_path):
    config_path = _shared_project(tmp_path)
    config = load_config(config_path)
    config["downstream_tasks"]["detection"]["data_loader"]["datasets"]["test"]["preprocessing"] = {**SHARED, "target_shape": [8, 8, 4]}
    builder = ComponentBuilder(config_path)
    module = build_data_module(builder, config, run_seed(config))
    assert module.preprocessing == SHARED and module.data_root == config["data_root"]
    key = "downstream_tasks.detection.data_loader"
    datasets = build_datasets(builder, config["downstream_tasks"]["detection"]["data_loader"], key, shared_values(config))
    for name, volumes in datasets.items():
        own = name == "test"  # its own preprocessing, whole
        assert volumes.preprocessor == VolumePreprocessor(**({**SHARED, "target_shape": [8, 8, 4]} if own else SHARED)), name
        assert volumes.data_root == config["data_root"]
        assert volumes[0].image.shape == ((8, 8, 4) if own else (16, 16, 8))


@pytest.mark.parametrize("item, words", [
    ("preprocessing.crop_shap=[16, 16, 8]", r"tiny.yaml: preprocessing.crop_shap: unknown parameter of VolumePreprocessor; "
                                            r"did you mean 'crop_shape'"),
    ("preprocessing.crop_shape=[0, 16, 8]", r"tiny.yaml: preprocessing.crop_shape: \[0\]: expected an integer >= 1"),
    ("preprocessing=16", r"tiny.yaml: preprocessing: expected mapping or null, got 16"),
])
def test_a_bad_shared_value_is_one_line_naming_the_top_level_key(tmp_path, item, words):
    config_path = _shared_project(tmp_path)
    check_config(config_path)
    with pytest.raises(UserInputError, match=words):
        check_config(config_path, [item])


def test_a_test_only_config_takes_the_shared_values_its_weights_carry(tmp_path):
    """`complete_config`: a config naming only the weights evaluates as the run that wrote them read its data."""
    stored = load_config(_shared_project(tmp_path))
    torch.save({"model_weights": {}, "config": stored, "metadata_version": 2}, tmp_path / "w.pt")
    completed = complete_config({"experiment": {"task": "test", "weights": str(tmp_path / "w.pt")}})
    assert completed["preprocessing"] == SHARED and completed["data_root"] == stored["data_root"]
