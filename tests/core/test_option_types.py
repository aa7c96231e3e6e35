"""Options are typed by their StrEnum in signatures (not `str`): in constructors, so the configurator's
one type check refuses a bad value, naming the choices, before anything is built; and in public
functions and methods, so a caller and a type checker see the choices (`parse_option` inside still
converts a direct caller's string)."""
from __future__ import annotations

import enum
import inspect
import types
import typing

import pytest

from core.config.builder import ComponentBuilder
from core.config.configurator import ConfigError
from dl_utils.param_types import constructor_hints
from optim.metrics.detection import Reduction
from tests.project_classes import project_classes, public_functions


def _option_enums() -> dict[str, type[enum.Enum]]:
    """Value -> enum, over every StrEnum this project defines."""
    values: dict[str, type[enum.Enum]] = {}
    for cls in project_classes():
        if issubclass(cls, enum.StrEnum):
            values.update({member.value: cls for member in cls})
    return values


def _strip_optional(hint: typing.Any) -> typing.Any:
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    return args[0] if typing.get_origin(hint) in (typing.Union, types.UnionType) and len(args) == 1 else hint


def _signature_options() -> list[tuple[str, str, typing.Any, object]]:
    """(class, parameter, hint, default) of every constructor parameter with a string default."""
    found = []
    for cls in project_classes():
        if issubclass(cls, enum.Enum):
            continue
        try:
            params = inspect.signature(cls).parameters
        except (TypeError, ValueError):
            continue
        hints = constructor_hints(cls)
        for name, param in params.items():
            if isinstance(param.default, str) and name in hints:
                found.append((f"{cls.__module__}.{cls.__qualname__}", name, _strip_optional(hints[name]), param.default))
    return found


def _untyped(found: list[tuple[str, str, typing.Any, object]], enums: dict[str, type[enum.Enum]]) -> list[str]:
    """The parameters typed `str` (or not at all) whose default names an option of a project StrEnum."""
    return [f"{owner}({name}: str = {default!r}) -> {enums[default].__name__}"
            for owner, name, hint, default in found
            if hint in (str, inspect.Parameter.empty) and default in enums and enums[default].__module__.split(".")[0] != "tests"
            and name not in FREE_STRINGS]


FREE_STRINGS = {  # parameters whose string default happens to spell an option, though they are no option set
    "device": "a torch device string: auto, cpu, cuda or cuda:N (dl_utils.device.resolve_device)",
}


def test_a_string_default_that_names_an_option_is_typed_by_its_enum():
    """Discovered over every constructor: `beta_schedule: str = "cosine"` would escape the config
    check (any string passes `str`) and be re-validated inside; its StrEnum is the type."""
    untyped = _untyped(_signature_options(), _option_enums())
    assert not untyped, "type these options by their StrEnum: " + "; ".join(untyped)


def _function_options(functions=None) -> list[tuple[str, str, typing.Any, object]]:
    """(function, parameter, hint, default) of every parameter with a string default of the public
    functions and methods (`tests.project_classes.public_functions`, or `functions`)."""
    found = []
    for qualname, func in functions if functions is not None else public_functions():
        try:
            hints = typing.get_type_hints(func)
        except (NameError, TypeError):  # a hint naming a type only imported for type checking: read it as written
            hints = {k: v for k, v in inspect.get_annotations(func).items() if not isinstance(v, str)}
        for name, param in inspect.signature(func).parameters.items():
            if isinstance(param.default, str):
                found.append((qualname, name, _strip_optional(hints.get(name, inspect.Parameter.empty)), param.default))
    return found


def test_public_functions_type_their_options_by_their_enum_too():
    """Discovered over every public function and method: `sample_score(reduction: str = "mean")` or
    `reconstruct_volume(precision: str = "auto")` hides the choices from the caller."""
    functions = _function_options()
    assert len(functions) >= 20
    untyped = _untyped(functions, _option_enums())
    assert not untyped, "type these options by their StrEnum: " + "; ".join(untyped)


def _untyped_reduction(amap, reduction: str = "mean"):  # what the check must find
    return amap


def _typed_reduction(amap, reduction: Reduction = Reduction.MEAN, device: str = "auto", label: str = "mean value"):
    return amap


def _unannotated_reduction(amap, reduction="max"):
    return amap


def test_the_function_check_finds_an_untyped_option_and_passes_a_typed_one():
    enums = _option_enums()
    found = _untyped(_function_options([("untyped", _untyped_reduction), ("typed", _typed_reduction),
                                        ("bare", _unannotated_reduction)]), enums)
    assert found == ["untyped(reduction: str = 'mean') -> Reduction", "bare(reduction: str = 'max') -> Reduction"]


def test_every_enum_default_is_a_member_of_its_enum():
    checked = 0
    for cls, name, hint, default in _signature_options():
        if inspect.isclass(hint) and issubclass(hint, enum.Enum):
            assert default in {m.value for m in hint}, f"{cls}({name}={default!r}) is not a {hint.__name__}"
            checked += 1
    assert checked >= 25  # trainer, data modules, preprocessing, models, scorers, post-processing


@pytest.mark.parametrize("spec, key, value, choices", [
    ({"module_name": "model_zoo.diffusion_models", "class_name": "DDPM"}, "diffusion", {"beta_schedule": "cosin"},
     "'cosine', 'linear'"),
    ({"module_name": "model_zoo.diffusion_models", "class_name": "ConditionalDDPM"}, "encoder", {"arch": "resnet51"},
     "'resnet18', 'resnet34', 'resnet50'"),
    ({"module_name": "optim.scoring.ssim", "class_name": "SSIMEnsembleScorer"}, "padding", "zeros",
     "'symmetric', 'reflect'"),
    ({"module_name": "data.volume_dataset", "class_name": "VolumeDataModule"}, "contrast", {"mode": "flair"}, "'t1', 't2'"),
])
def test_a_bad_option_is_refused_by_the_config_check_with_its_choices(spec, key, value, choices):
    with pytest.raises(ConfigError) as info:
        ComponentBuilder("cfg.yaml").check({**spec, "params": {key: value}}, "part")
    message = str(info.value)
    assert f"part.params.{key}" in message and choices in message and "\n" not in message
