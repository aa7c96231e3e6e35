"""Ranges stated in constructor signatures (`Annotated[int, Ge(1)]`) are checked with the types,
before anything is built: `dl_utils.param_types` and `core.config.builder.ComponentBuilder`."""
from __future__ import annotations

import inspect
import typing
from typing import Annotated, Any

import pytest

from core.config.builder import ComponentBuilder
from core.config.configurator import ConfigError
from dl_utils.param_ranges import NonNegativeInt, OpenFraction, PositiveFloat, PositiveInt
from dl_utils.param_types import Ge, Gt, Le, Lt, MaxItems, bounds_of, constructor_hints, describe, mismatch
from tests.project_classes import project_classes


@pytest.mark.parametrize("value, hint, ok", [
    (1, PositiveInt, True), (0, PositiveInt, False), (-3, PositiveInt, False), (0, NonNegativeInt, True),
    (1.0, PositiveInt, False),  # the type is checked first: a float is no integer whatever its range
    (None, PositiveInt | None, True), (0, PositiveInt | None, False),
    (0.5, PositiveFloat, True), (0, PositiveFloat, False), (-1, PositiveFloat, False), (float("nan"), PositiveFloat, False),
    (10**30, Annotated[int, Ge(1), Le(1_000_000)], False), (1_000_000, Annotated[int, Ge(1), Le(1_000_000)], True),
    ([0.01, 0.05], list[OpenFraction], True), ([0.05, 1.5], list[OpenFraction], False), ([0.0], list[OpenFraction], False),
    (1, Annotated[float, Gt(1)], False), (0.999, Annotated[float, Lt(1)], True), (True, PositiveInt, False),
])
def test_ranges_are_checked_after_the_type(value, hint, ok):
    assert (mismatch(value, hint) is None) == ok, mismatch(value, hint)


def test_range_messages_say_the_range():
    assert mismatch(0, PositiveInt | None) == "expected an integer >= 1 or null, got 0 (int)"
    assert mismatch([0.05, 1.5], list[OpenFraction]) == "[1]: expected a number > 0 and < 1, got 1.5 (float)"
    assert describe(list[PositiveInt]) == "list of integers >= 1"
    assert bounds_of(PositiveInt) == (Ge(1),) and bounds_of(int) == ()


def _builder() -> ComponentBuilder:
    return ComponentBuilder("cfg.yaml")


TRAINER = {"module_name": "core.Trainer", "class_name": "Trainer"}
DATA = {"module_name": "data.volume_dataset", "class_name": "VolumeDataModule"}
RESERVED = ("model", "data_module", "device", "run_dir", "dist_ctx", "logger", "seed")


@pytest.mark.parametrize("spec, key, expected", [
    (TRAINER, "grad_clip", (-1, "trainer.params.grad_clip: expected a number > 0 or null, got -1")),
    (TRAINER, "patience", (0, "trainer.params.patience: expected an integer >= 1 and <= 1000000 or null, got 0")),
    (TRAINER, "val_every", (0, "trainer.params.val_every: expected an integer >= 1 and <= 1000000, got 0")),
    (TRAINER, "nr_epochs", (10**30, "trainer.params.nr_epochs: expected an integer >= 1 and <= 1000000")),
    (TRAINER, "max_steps_per_epoch", (10**12, "trainer.params.max_steps_per_epoch: expected an integer >= 1 and <= 10000000 or null")),
    (DATA, "samples_per_epoch", (0, "trainer.data_loader.params.samples_per_epoch: expected an integer >= 1 and <= 10000000 or null")),
    (DATA, "samples_per_epoch", (10**12, "trainer.data_loader.params.samples_per_epoch: expected an integer >= 1 and <= 10000000 or null")),
    (DATA, "num_workers", (-1, "trainer.data_loader.params.num_workers: expected an integer >= 0 and <= 256, got -1")),
    (DATA, "num_workers", (100_000, "trainer.data_loader.params.num_workers: expected an integer >= 0 and <= 256, got 100000")),
    (DATA, "batch_size", (0, "trainer.data_loader.params.batch_size: expected an integer >= 1 and <= 65536, got 0")),
])
def test_out_of_range_component_params_are_one_line_errors(spec, key, expected):
    value, message = expected
    where = "trainer" if spec is TRAINER else "trainer.data_loader"
    with pytest.raises(ConfigError) as info:
        _builder().check({**spec, "params": {key: value}}, where, reserved=RESERVED if spec is TRAINER else ())
    assert message in str(info.value) and "\n" not in str(info.value)


def _plain(value: Any) -> Any:
    """A default as YAML would spell it (tuples are lists)."""
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    return value


def _has_range(hint: Any) -> bool:
    if typing.get_origin(hint) is Annotated:
        return bool(bounds_of(hint)) or _has_range(typing.get_args(hint)[0])
    return any(_has_range(a) for a in typing.get_args(hint))


def test_every_default_lies_in_its_own_range():
    """Discovered, not listed: each constructor whose signature states a range has a default inside it."""
    checked = 0
    for cls in project_classes():
        hints = constructor_hints(cls)
        try:
            params = inspect.signature(cls).parameters
        except (TypeError, ValueError):
            continue
        for name, param in params.items():
            hint = hints.get(name)
            if hint is None or param.default is inspect.Parameter.empty or not _has_range(hint):
                continue
            why = mismatch(_plain(param.default), hint)
            assert why is None, f"{cls.__module__}.{cls.__name__}({name}={param.default!r}): {why}"
            checked += 1
    assert checked >= 40  # Trainer, data modules, preprocessing, augmentation, post-processing, scorers, models


def test_item_counts_are_part_of_the_hint():
    hint = Annotated[list[OpenFraction], MaxItems(2)]
    assert describe(hint) == "list of numbers > 0 and < 1 (at most 2)"
    assert mismatch([0.1, 0.2, 0.3], hint) == "expected list of numbers > 0 and < 1 (at most 2), got 3 items"
    assert mismatch([0.1, 0.2], hint) is None


def test_a_direct_caller_meets_the_signature_ranges_of_a_typed_part():
    """`check_fields`: a typed part states its ranges once, in its field hints; a Python caller who
    bypasses the config check gets a ValueError naming the field."""
    from core.evaluation.pipeline import InferenceSettings
    from core.evaluation.settings import OutputSettings
    from core.evaluation.thresholds import ThresholdSettings

    for make, words in [(lambda: ThresholdSettings(bisection_steps=65), "bisection_steps: expected an integer >= 1 and <= 64"),
                        (lambda: ThresholdSettings(fpr_levels=(0.05, 1.5)), "fpr_levels: [1]: expected a number > 0 and < 1"),
                        (lambda: ThresholdSettings(fixed=(float("inf"),)), "fixed: [0]: expected a finite value"),
                        (lambda: InferenceSettings(slice_batch_size=0), "slice_batch_size: expected an integer >= 1"),
                        (lambda: InferenceSettings(unet_batch_size=0), "unet_batch_size: expected an integer >= 1 and <= 65536"),
                        (lambda: OutputSettings(figure_cases=-1), "figure_cases: expected an integer >= 0")]:
        with pytest.raises(ValueError) as info:
            make()
        assert words in str(info.value)
    assert InferenceSettings(unet_batch_size="auto").unet_batch_size == "auto"
    assert InferenceSettings(unet_batch_size=None, compile_min_tflop=float("inf")).unet_batch_size is None


def test_a_part_built_by_its_component_names_the_closest_key():
    """`build_part` (a data module's preprocessing / augmentation, built by the module itself) says which
    key was meant, as the config check does for the same mapping (`ParamsOf`)."""
    from data.augmentation import Augmentation
    from dl_utils.errors import UserInputError
    from dl_utils.param_types import build_part

    with pytest.raises(UserInputError, match=r"augmentation.gamm: unknown parameter of Augmentation; did you mean 'gamma'"):
        build_part(Augmentation, {"gamm": {"p": 0.5}}, "augmentation")
    with pytest.raises(UserInputError, match=r"augmentation.gamma.pp: unknown parameter of Gamma; did you mean 'p'"):
        build_part(Augmentation, {"gamma": {"pp": 0.5}}, "augmentation")
    assert build_part(Augmentation, {"gamma_p": 0.3}, "augmentation").gamma.p == 0.3  # flat keys of version 1 still read
