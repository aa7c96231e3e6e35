"""`python -m benchmarks.bench_diffusion --cpu-precision --weights CKPT` times a volume the checkpoint
was evaluated on: the first labelled test set of its config chosen by the evaluator's roles
(`DataRoles.test_sets` of the task's typed `roles`), not by how the data sets are named."""
from __future__ import annotations

from typing import Any

import pytest

from benchmarks.diffusion.volumes import evaluated_volume, labelled_test_set
from core.config.builder import ComponentBuilder
from tests.demo_like_data import write_demo_like

LOADER = {"module_name": "data.volume_dataset", "class_name": "VolumeSet",
          "params": {"preprocessing": {"crop_shape": None, "percentiles": None, "target_shape": None}}}
SCORING = {"scorer": {"module_name": "optim.scoring.l1", "class_name": "L1Scorer", "params": {}}}


def _task(params: dict[str, Any], datasets: dict[str, str]) -> dict[str, Any]:
    """An evaluation task over `datasets` ({name: the demo-like split CSV it reads})."""
    return {"module_name": "core.DownstreamEvaluator", "class_name": "AnomalyDetectionEvaluator",
            "params": {"scoring": SCORING, **params},
            "data_loader": {**LOADER, "datasets": {n: {"csv": f"splits/{csv}.csv"} for n, csv in datasets.items()}}}


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    return write_demo_like(tmp_path_factory.mktemp("bench_volume"), shape=(16, 16, 6), per_split=1)


def test_the_timed_volume_is_a_labelled_test_set_whatever_the_sets_are_called(data_root):
    """`testh` is the healthy test set (a name-based pick, `test*` without 'healthy', took it); the
    README's `my_*` names as earlier configs' flat keys (the name-based pick fell back to
    `my_healthy_val`); a fit set; a task that is not an evaluation is passed over."""
    builder = ComponentBuilder("stored config")
    renamed = _task({"roles": {"healthy_validation": "hv", "healthy_test": "testh", "labelled_validation": {"lesions": "tuning"}}},
                    {"testh": "test_healthy", "hv": "val_healthy", "tuning": "val_hyper_spheres", "lesions": "test_hyper_spheres"})
    flat = _task({"healthy_validation": "my_healthy_val", "healthy_test": "my_healthy_test", "labelled_validation": "my_val"},
                 {"my_healthy_val": "val_healthy", "my_healthy_test": "test_healthy", "my_val": "val_fpi", "my_test": "test_fpi"})
    fitted = _task({"roles": {"fit_set": "test_normal"}}, {"test_normal": "train_healthy", "scans": "test_deformation"})
    assert labelled_test_set(builder, renamed, "downstream_tasks.a") == "lesions"
    assert labelled_test_set(builder, flat, "downstream_tasks.b") == "my_test"
    assert labelled_test_set(builder, fitted, "downstream_tasks.c") == "scans"
    only_roles = _task({"roles": {"healthy_test": "testh"}}, {"testh": "test_healthy"})
    assert labelled_test_set(builder, only_roles, "downstream_tasks.d") is None
    assert labelled_test_set(builder, {"module_name": "core.Trainer", "class_name": "Trainer"}, "downstream_tasks.e") is None

    config = {"data_root": str(data_root), "downstream_tasks": {"none": only_roles, "renamed": renamed}}
    volume, where = evaluated_volume(builder, config, slices=4)
    assert volume.name == "test_hyper_spheres_0" and tuple(volume.image.shape[-1:]) == (4,)
    assert where == "test volume test_hyper_spheres_0 of renamed / lesions, slices 1-4"
    assert evaluated_volume(builder, {"data_root": str(data_root), "downstream_tasks": {"none": only_roles}}, 4) == (None, "")
