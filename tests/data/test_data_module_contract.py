"""Every training data module of data/ fills the trainer's `TrainingDataModule` contract
(core.training.trainer): its splits, batch_size, num_workers and drop_last, which the trainer
reads directly. The data modules are discovered (every class with `train_dataset` and
`val_dataset`), so a new one cannot skip this test; a built module that does not fill the
contract is one config error naming what it lacks (`data_module_problem`, core.run.assembly)."""
from __future__ import annotations

from types import SimpleNamespace

import pytest

from core.training.contracts import TrainingDataModule, data_module_problem
from tests.core.fakes import SyntheticDataModule
from tests.project_classes import classes_in, provides, satisfies


def _has_splits(cls: type) -> bool:
    return provides(cls, "train_dataset", method=True) and provides(cls, "val_dataset", method=True) \
        and not getattr(cls, "_is_protocol", False)


DATA_MODULES = classes_in("data", _has_splits)


def test_the_data_modules_are_found():
    assert {"VolumeDataModule", "ImageListDataModule"} <= set(DATA_MODULES)


@pytest.mark.parametrize("name", sorted(DATA_MODULES))
def test_every_data_module_declares_the_contract(name):
    cls = DATA_MODULES[name]
    assert satisfies(cls, TrainingDataModule), f"{name} lacks a member of TrainingDataModule"


def test_a_built_data_module_fills_it():
    data = SyntheticDataModule()
    assert isinstance(data, TrainingDataModule) and data_module_problem(data) is None


def _splits(**settings):
    return SimpleNamespace(train_dataset=lambda: [], val_dataset=lambda: None, **settings)


@pytest.mark.parametrize("settings, problem", [
    ({"batch_size": 4, "num_workers": 0}, "has no drop_last"),
    ({"num_workers": 0, "drop_last": False}, "has no batch_size"),
    ({"batch_size": 4, "num_workers": -1, "drop_last": False}, "num_workers is -1; a training data module's num_workers is an integer >= 0"),
    ({"batch_size": True, "num_workers": 0, "drop_last": False}, "batch_size is True"),
    ({"batch_size": 4, "num_workers": 0, "drop_last": "yes"}, "drop_last is 'yes'"),
])
def test_a_module_that_does_not_fill_it_is_named_in_words(settings, problem):
    found = data_module_problem(_splits(**settings))
    assert found is not None and problem in found and "\n" not in found


class _NoDropLast(SyntheticDataModule):
    """A data module an external package might write: no drop_last."""

    def __init__(self, batch_size: int = 8):
        super().__init__(batch_size=batch_size)
        del self.drop_last


def test_the_run_refuses_it_before_anything_is_written():
    from core.config.builder import ComponentBuilder
    from core.config.configurator import ConfigError
    from core.run.assembly import build_data_module

    spec = {"module_name": __name__, "class_name": "_NoDropLast", "params": {"batch_size": 4}}
    builder = ComponentBuilder("cfg.yaml", allow_external_modules=True)
    with pytest.raises(ConfigError) as info:
        build_data_module(builder, {"trainer": {"data_loader": spec}}, seed=0)
    message = str(info.value)
    assert "trainer.data_loader" in message and "_NoDropLast has no drop_last" in message and "\n" not in message
    spec["class_name"] = "SyntheticDataModule"
    spec["module_name"] = "tests.core.fakes"
    assert isinstance(build_data_module(builder, {"trainer": {"data_loader": spec}}, seed=0), TrainingDataModule)
