"""`extends: <task>` in downstream_tasks: a second task of the same protocol states only what differs."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from core.config.configurator import load_config
from dl_utils.errors import UserInputError

PROTOCOL = {"module_name": "core.evaluation.evaluator", "class_name": "AnomalyDetectionEvaluator",
            "params": {"scorer": {"module_name": "optim.scoring.l1", "class_name": "L1Scorer", "params": {}},
                       "fpr_levels": [0.01, 0.05], "healthy_validation": "val"},
            "data_loader": {"module_name": "data.volume_dataset", "class_name": "VolumeSet",
                            "params": {"data_root": "d"}, "datasets": {"val": {"csv": "v.csv"}, "test": {"csv": "t.csv"}}}}


def _write(tmp_path: Path, tasks: dict) -> Path:
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"name": "x", "experiment": {"task": "test"}, "downstream_tasks": tasks}))
    return path


def test_a_task_extends_another_and_states_only_the_difference(tmp_path):
    other_scorer = {"module_name": "optim.scoring.ssim", "class_name": "SSIMEnsembleScorer", "params": {}}
    config = load_config(_write(tmp_path, {"a": PROTOCOL, "b": {"extends": "a", "params": {"scorer": other_scorer}}}))
    a, b = config["downstream_tasks"]["a"], config["downstream_tasks"]["b"]
    assert b["params"]["scorer"] == other_scorer  # another class replaces the component whole
    assert {k: v for k, v in b["params"].items() if k != "scorer"} == {k: v for k, v in a["params"].items() if k != "scorer"}
    assert b["data_loader"] == a["data_loader"] and "extends" not in b


@pytest.mark.parametrize("tasks,words", [
    ({"a": PROTOCOL, "b": {"extends": "nope"}}, "'nope' is not a task"),
    ({"a": {"extends": "b"}, "b": {"extends": "a"}}, "loop"),
    ({"a": 5, "b": {"extends": "a"}}, "'a' is not a task mapping"),
])
def test_a_bad_extends_is_one_line_naming_the_key(tmp_path, tasks, words):
    with pytest.raises(UserInputError) as err:
        load_config(_write(tmp_path, tasks))
    assert words in str(err.value) and "downstream_tasks." in str(err.value) and "\n" not in str(err.value)


def test_a_set_on_a_task_reaches_the_tasks_that_extend_it(tmp_path):
    """`--set` is applied before `extends` is resolved: one protocol changed once changes every task built on it."""
    path = _write(tmp_path, {"a": PROTOCOL, "b": {"extends": "a"}})
    tasks = load_config(path, overrides=["downstream_tasks.a.params.fpr_levels=[0.1]"])["downstream_tasks"]
    assert tasks["a"]["params"]["fpr_levels"] == tasks["b"]["params"]["fpr_levels"] == [0.1]


def test_a_set_may_name_a_key_that_a_task_only_inherits(tmp_path):
    path = _write(tmp_path, {"a": PROTOCOL, "b": {"extends": "a"}})
    tasks = load_config(path, overrides=["downstream_tasks.b.params.fpr_levels=[0.2]"])["downstream_tasks"]
    assert tasks["a"]["params"]["fpr_levels"] == [0.01, 0.05] and tasks["b"]["params"]["fpr_levels"] == [0.2]
    assert tasks["b"]["params"]["scorer"] == PROTOCOL["params"]["scorer"]  # the rest still inherited
    with pytest.raises(UserInputError, match=r"downstream_tasks\.b\.params\.nope.*not in the config"):
        load_config(path, overrides=["downstream_tasks.b.params.nope.x=1"])


def test_ra_demo_config_evaluates_both_maps_with_one_protocol():
    tasks = load_config("projects/RA/configs/ra.yaml")["downstream_tasks"]
    lpips, l1 = tasks["anomaly_detection"], tasks["anomaly_detection_l1"]
    scoring = lpips["params"]["scoring"], l1["params"]["scoring"]
    assert scoring[0]["scorer"]["class_name"] == "RAPerceptualScorer" and scoring[1]["scorer"]["class_name"] == "L1Scorer"
    assert lpips["data_loader"] == l1["data_loader"]
    assert {k: v for k, v in lpips["params"].items() if k != "scoring"} == {k: v for k, v in l1["params"].items() if k != "scoring"}
    assert {k: v for k, v in scoring[0].items() if k not in ("scorer", "skip_if_unavailable")} == \
           {k: v for k, v in scoring[1].items() if k not in ("scorer", "skip_if_unavailable")}


def test_predict_reads_a_stored_task_that_extends_another_as_uad_test_does(tmp_path):
    """A checkpoint's stored config is read as a config file is (`checkpoint_metadata.read`): `uad predict`
    resolved no `extends` and refused it as an unknown key of the task, while `uad test --model` ran it."""
    import torch

    from core.commands.predictor import load_predictor
    from core.run import checkpoint_metadata

    state = torch.load("weights/ra_demo.pt", map_location="cpu", weights_only=True)
    state["config"]["downstream_tasks"]["l1_again"] = {"extends": "anomaly_detection_l1"}
    torch.save(state, tmp_path / "extended.pt")
    tasks = checkpoint_metadata.test_config(tmp_path / "extended.pt")["downstream_tasks"]
    assert tasks["l1_again"] == tasks["anomaly_detection_l1"]
    predictor = load_predictor(tmp_path / "extended.pt", task="l1_again", device="cpu")
    stored = predictor.config["downstream_tasks"]
    assert predictor.task == "l1_again" and stored["l1_again"] == stored["anomaly_detection_l1"]


def test_resume_accepts_the_set_its_run_began_with_on_a_task_others_extend(tmp_path):
    """A mapping given by --set to an extending task merges with what it inherits when the run begins;
    --resume with the same --set compares it the same way (the config file with the run's --set), not by
    replacing the mapping in the resolved stored config (which reported a change that was none)."""
    from core.config.builder import ComponentBuilder
    from core.run.run_folder import LATEST, resume_config, write_run_config

    path = _write(tmp_path, {"a": PROTOCOL, "b": {"extends": "a"}})
    given = ["downstream_tasks.b.params.data_loader_note={x: 1}", "downstream_tasks.b.data_loader.params={data_root: e}"]
    run_dir = tmp_path / "run"
    (run_dir / LATEST).parent.mkdir(parents=True)
    (run_dir / LATEST).write_bytes(b"")
    write_run_config(run_dir, ComponentBuilder(path).upgrade(load_config(path, overrides=given)), path, given)
    assert resume_config(run_dir, path, given) == resume_config(run_dir, path, [])
    with pytest.raises(UserInputError, match="--set changes downstream_tasks.b.data_loader.params.data_root"):
        resume_config(run_dir, path, ["downstream_tasks.b.data_loader.params={data_root: f}"])
