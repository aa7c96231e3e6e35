"""Config loading, overrides, schema errors and the module allow-list."""
from __future__ import annotations

import pytest

from core.config.builder import ComponentBuilder, constructor_keywords
from core.config.configurator import MAX_CONFIG_NODES, apply_overrides, check_yaml_data, load_config, load_yaml, merge_configs, validate_top_level
from dl_utils.errors import UserInputError

BASE = {"name": "t", "experiment": {"name": "t", "task": "test"}, "model": {"module_name": "model_zoo.identity", "class_name": "IdentityModel"}}


def test_safe_load_rejects_python_tags(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("size: !!python/tuple [1, 2]\n")
    with pytest.raises(UserInputError, match=r"c\.yaml: invalid YAML at line 1"):
        load_yaml(path)


def test_missing_config_file_names_it(tmp_path):
    with pytest.raises(UserInputError, match="nope.yaml: config file not found"):
        load_yaml(tmp_path / "nope.yaml")


def test_unknown_top_level_key_suggests_closest():
    with pytest.raises(UserInputError, match="c.yaml: experimnt: unknown top-level key; did you mean 'experiment'"):
        validate_top_level({**BASE, "experimnt": {}}, "c.yaml")


def test_unknown_task_is_an_error():
    with pytest.raises(UserInputError, match="experiment.task"):
        validate_top_level({**BASE, "experiment": {"task": "fit"}}, "c.yaml")


def test_plain_yaml_data_is_checked_by_key_path():
    """A config unpickled from a checkpoint may hold what weights_only allows; each such value is one line naming
    its key path (a tensor made yaml.safe_dump fail with a traceback), plain data passes, and a list holding itself
    or a vast one stops at the node limit."""
    import collections

    import numpy as np
    import torch
    import yaml

    plain = {**BASE, "seed": 7, "x": [1, 2.5, True, None, "a", {"b": []}]}
    check_yaml_data(plain, "c.pt (stored config)", "fix it")
    yaml.safe_dump(plain)  # what the check promises: it writes back as YAML
    bad = {"seed": (torch.tensor(7), "seed: a torch.Tensor, not plain YAML data"),
           "model.params.size": ((1, 2), "model.params.size: a tuple, not plain YAML data"),
           "name": (b"tiny", "name: a bytes, not plain YAML data"),
           "model.params": (collections.OrderedDict(a=1), "model.params: a collections.OrderedDict, not plain YAML data"),
           "model.params.lr": (np.float64(0.1), "model.params.lr: a numpy.float64, not plain YAML data"),
           "model.params.channels": ([8, torch.tensor(16)], r"model.params.channels\[1\]: a torch.Tensor")}
    for dotted, (value, message) in bad.items():
        config = {**BASE, "model": {**BASE["model"], "params": {}}}
        *parents, last = dotted.split(".")
        node = config
        for key in parents:
            node = node[key]
        node[last] = value
        with pytest.raises(UserInputError, match=rf"^c\.pt \(stored config\): {message}.*; fix it$"):
            check_yaml_data(config, "c.pt (stored config)", "fix it")
    with pytest.raises(UserInputError, match=r"c\.pt: 5: a key of type int; config keys are text"):
        check_yaml_data({**BASE, 5: "x"}, "c.pt", "fix it")
    with pytest.raises(UserInputError, match=r"c\.pt: model\.\(1, 2\): a key of type tuple"):
        check_yaml_data({**BASE, "model": {(1, 2): 1}}, "c.pt", "fix it")
    with pytest.raises(UserInputError, match=f"more than {MAX_CONFIG_NODES} values"):
        check_yaml_data({**BASE, "x": [0] * (MAX_CONFIG_NODES + 1)}, "c.pt", "fix it")


def test_a_stored_config_holding_itself_is_one_line_naming_the_key_path():
    """A weights-only pickle keeps a list or mapping that holds itself (1 KB); its walk kept a path string per
    value, growing with the depth, until the process ran out of memory. A value two keys share is no loop."""
    looped: list = [8]
    looped.append(looped)
    with pytest.raises(UserInputError, match=r"^c\.pt: model\.params\.channels\[1\]: holds itself .*; fix it$"):
        check_yaml_data({**BASE, "model": {"params": {"channels": looped}}}, "c.pt", "fix it")
    params: dict = {"lr": 0.1}
    params["self"] = params
    with pytest.raises(UserInputError, match=r"^c\.pt: trainer\.params\.self: holds itself"):
        check_yaml_data({**BASE, "trainer": {"params": params}}, "c.pt", "fix it")
    shared = {"k": [1, 2]}
    check_yaml_data({**BASE, "a": shared, "b": [shared, shared]}, "c.pt", "fix it")  # an alias, as YAML writes one
    deep: list = []
    for _ in range(20_000):
        deep = [deep]
    check_yaml_data({**BASE, "deep": deep}, "c.pt", "fix it")  # deep but finite (and no recursion): passes
    import torch

    tensor_deep: list = [torch.tensor(1)]
    for _ in range(80):
        tensor_deep = [tensor_deep]
    with pytest.raises(UserInputError, match=r"^c\.pt: deep(\[0\]){11}\.\.\.(\[0\]){10}: a torch\.Tensor") as err:
        check_yaml_data({**BASE, "deep": tensor_deep}, "c.pt", "fix it")
    assert len(str(err.value)) < 400  # the key path of a deep value is shortened


def test_a_key_twice_in_one_mapping_is_refused_naming_the_line(tmp_path):
    """YAML keeps the last of two equal keys silently (`seed: 7` then `seed: 8` ran with seed 8)."""
    path = tmp_path / "c.yaml"
    path.write_text("name: c\ntrainer:\n  params:\n    seed: 7\n    lr: 0.1\n    seed: 8\n")
    with pytest.raises(UserInputError, match=r"^.*c\.yaml: line 6: key 'seed' appears twice in one mapping \(first at line 4\); keep one"):
        load_yaml(path)
    path.write_text("base: &b {seed: 7, lr: 0.1}\nrun:\n  <<: *b\n  seed: 8\nsame: {seed: 7}\nother: {seed: 7}\n")
    assert load_yaml(path)["run"] == {"seed": 8, "lr": 0.1}  # a merge key overridden is no duplicate, nor equal keys apart
    with pytest.raises(UserInputError, match=r"--set model=\{a: 1, a: 2\}: the value is not valid YAML \(key 'a' appears twice"):
        apply_overrides({"model": {}}, ["model={a: 1, a: 2}"], "c.yaml")


def test_overrides_are_typed_by_yaml():
    config = {"trainer": {"params": {"nr_epochs": 5, "amp": False}}}
    out = apply_overrides(config, ["trainer.params.nr_epochs=2", "trainer.params.amp=true", "trainer.params.lr=1e-3"], "c.yaml")
    assert out["trainer"]["params"] == {"nr_epochs": 2, "amp": True, "lr": 1e-3}
    assert config["trainer"]["params"]["nr_epochs"] == 5  # input not modified


def test_override_of_missing_parent_suggests_closest():
    with pytest.raises(UserInputError, match="c.yaml: trainr: --set names a key that is not in the config; did you mean 'trainer'"):
        apply_overrides({"trainer": {"params": {}}}, ["trainr.params.x=1"], "c.yaml")


def test_unknown_param_names_class_and_closest():
    builder = ComponentBuilder("c.yaml")
    spec = {"module_name": "model_zoo.autoencoder", "class_name": "ConvAutoencoder", "params": {"latent_dims": 3}}
    with pytest.raises(UserInputError, match="model.params.latent_dims: unknown parameter of ConvAutoencoder; did you mean 'latent_dim'"):
        builder.build(spec, "model")


def test_external_modules_need_opt_in():
    spec = {"module_name": "collections", "class_name": "OrderedDict", "params": {}}
    with pytest.raises(UserInputError, match="pass --allow-external-modules on the command line"):
        ComponentBuilder("c.yaml").build(spec, "model")
    assert ComponentBuilder("c.yaml", allow_external_modules=True).build(spec, "model") == {}


def test_unknown_class_suggests_closest():
    spec = {"module_name": "model_zoo.autoencoder", "class_name": "ConvAutoEncoder"}
    with pytest.raises(UserInputError, match="did you mean 'ConvAutoencoder'"):
        ComponentBuilder("c.yaml").build(spec, "model")


def test_nested_components_are_built_in_order():
    spec = {"module_name": "core.training.trainer", "class_name": "Trainer", "params": {}}
    names, open_ended = constructor_keywords(type("Sub", (object,), {}))
    assert names == set() and not open_ended
    loss = ComponentBuilder("c.yaml").build_value(
        [{"module_name": "optim.losses.reconstruction", "class_name": "ReconstructionLoss", "params": {"kind": "l1"}}], "x")
    assert loss[0].kind == "l1"
    assert spec  # the trainer itself needs injected objects; built in end-to-end tests


def test_constructor_errors_are_one_line_user_errors():
    """What a signature cannot state (a noise level beyond the schedule) is the constructor's one line."""
    tiny = {"image_size": 8, "unet": {"base_channels": 8, "channel_mult": [1], "num_res_blocks": 1, "num_groups": 4,
                                      "num_head_channels": 8}, "diffusion": {"timesteps": 10}, "reconstruction": {"t_test": 20}}
    spec = {"module_name": "model_zoo.diffusion_models", "class_name": "DDPM", "params": tiny}
    with pytest.raises(UserInputError, match=r"^c.yaml: model.*DDPM: noise level 20 .* outside 1..10$"):
        ComponentBuilder("c.yaml").build(spec, "model")


def test_a_bad_option_is_refused_by_the_type_check_before_construction():
    spec = {"module_name": "optim.losses.reconstruction", "class_name": "ReconstructionLoss", "params": {"kind": "l3"}}
    with pytest.raises(UserInputError, match=r"c.yaml: loss.params.kind: expected one of 'l1', 'l2', got 'l3'"):
        ComponentBuilder("c.yaml").build(spec, "loss")


def test_constructor_keywords_follow_kwargs_into_bases():
    from core.evaluation.evaluator import AnomalyDetectionEvaluator

    names, open_ended = constructor_keywords(AnomalyDetectionEvaluator)
    assert {"scoring", "roles", "context", "seed"} <= names and not open_ended


def test_merge_configs_merges_mappings_and_replaces_the_rest():
    base = {"a": {"x": 1, "y": [1, 2]}, "scorer": {"module_name": "m", "class_name": "L1", "params": {"k": 1}}}
    override = {"a": {"y": [3]}, "scorer": {"params": {"k": 2}}}
    assert merge_configs(base, override) == {
        "a": {"x": 1, "y": [3]}, "scorer": {"module_name": "m", "class_name": "L1", "params": {"k": 2}}}
    other = {"scorer": {"module_name": "m", "class_name": "SSIM", "params": {"s": 1}}}
    assert merge_configs(base, other)["scorer"] == other["scorer"]  # another class: its params only
    assert base["a"] == {"x": 1, "y": [1, 2]}  # inputs untouched


def test_base_chain_is_merged_in_order(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "root.yaml").write_text("name: r\nseed: 1\nexperiment: {name: r, task: train}\n")
    (tmp_path / "mid.yaml").write_text("base: root.yaml\nseed: 2\n")
    (tmp_path / "leaf.yaml").write_text("base: [mid.yaml]\nexperiment: {task: test}\n")
    assert load_config("leaf.yaml") == {"name": "r", "seed": 2, "experiment": {"name": "r", "task": "test"}}


def test_base_errors_name_the_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a.yaml").write_text("base: missing.yaml\n")
    with pytest.raises(UserInputError, match=r"a\.yaml: base: missing\.yaml not found"):
        load_config("a.yaml")
    (tmp_path / "b.yaml").write_text("base: c.yaml\n")
    (tmp_path / "c.yaml").write_text("base: b.yaml\n")
    with pytest.raises(UserInputError, match="extend each other in a loop"):
        load_config("b.yaml")
    (tmp_path / "d.yaml").write_text("base: {x: 1}\n")
    with pytest.raises(UserInputError, match="d.yaml: base: must be a config path"):
        load_config("d.yaml")


def test_base_mapping_can_be_replaced_or_pruned(tmp_path):
    """`_replace: true` swaps a base's mapping whole; `_delete: [...]` drops keys of it (e.g. a paper config's data sets)."""
    base = tmp_path / "base.yaml"
    base.write_text("name: b\nsets: {ixi: {csv: a.csv}, brats: {csv: b.csv}, atlas: {csv: c.csv}}\nother: {x: 1, y: 2}\n")
    child = tmp_path / "child.yaml"
    child.write_text(f"base: {base}\nsets: {{_replace: true, mine: {{csv: m.csv}}}}\nother: {{_delete: [y], z: 3}}\n")
    config = load_config(child)
    assert config["sets"] == {"mine": {"csv": "m.csv"}}
    assert config["other"] == {"x": 1, "z": 3}
    child.write_text(f"base: {base}\nsets: {{_delete: [brats, atlas]}}\n")
    assert load_config(child)["sets"] == {"ixi": {"csv": "a.csv"}}
    child.write_text(f"base: {base}\nsets: {{_delete: [bratz]}}\n")
    with pytest.raises(UserInputError, match="child.yaml: _delete: 'bratz' is not a key of the base config; did you mean 'brats'"):
        load_config(child)


def test_markers_never_reach_the_merged_config(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("name: c\nsets: {_replace: true, a: {_delete: [], k: 1}}\n")
    assert load_config(path)["sets"] == {"a": {"k": 1}}


def test_yaml_alias_bomb_and_oversized_file_are_refused(tmp_path):
    bomb = tmp_path / "bomb.yaml"
    levels = ['a0: &a0 ["x", "x", "x", "x", "x", "x", "x", "x", "x"]']
    levels += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 9)]
    bomb.write_text("\n".join(levels) + "\n")
    with pytest.raises(UserInputError, match="bomb.yaml: invalid YAML: the document expands to more than"):
        load_yaml(bomb)
    huge = tmp_path / "huge.yaml"
    huge.write_text("name: x\n# " + "x" * 2_000_000 + "\n")
    with pytest.raises(UserInputError, match="huge.yaml: config file is 2000011 bytes"):
        load_yaml(huge)
    shared = tmp_path / "shared.yaml"
    shared.write_text("a: &a {k: 1}\nb: *a\n")  # ordinary aliases still work
    assert load_yaml(shared) == {"a": {"k": 1}, "b": {"k": 1}}


@pytest.mark.parametrize("value, hint, ok", [
    (2, int, True), (2.0, int, False), (True, int, False), ("2", int, False), (2, float, True), ("2.0", float, False),
    (None, "int | None", True), ([1, 2], "list[int]", True), ([1, 2.5], "list[int]", False), ((), "Sequence[int]", False),
    ({"a": 1}, "dict[str, float]", True), ([1], "dict[str, float]", False), ({"a": "x"}, "Mapping[str, float]", False),
    ("adam", "Literal['adam', 'sgd']", True), ("adan", "Literal['adam', 'sgd']", False), ("x", "str | int", True),
    (1.5, "str | int", False), ([1, 2], "tuple[int, int]", True), ([1, 2, 3], "tuple[int, int]", False),
    ("sum", "Reduction", False), ("mean", "Reduction", True), ("p", "Path", True), (3, "Path", False),
])
def test_values_are_checked_against_type_hints(value, hint, ok):
    from collections.abc import Mapping, Sequence  # noqa: F401 - names for eval
    from pathlib import Path  # noqa: F401
    from typing import Literal  # noqa: F401

    from dl_utils.param_types import mismatch
    from optim.metrics.detection import Reduction  # noqa: F401

    assert (mismatch(value, eval(hint) if isinstance(hint, str) else hint) is None) == ok
