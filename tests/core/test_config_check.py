"""`check_config` (core/run/config_check.py): what a benchmark checks of each method before its run folder."""
from __future__ import annotations

from pathlib import Path

import pytest

from core.run.config_check import check_config
from dl_utils.errors import UserInputError

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = sorted(ROOT.glob("projects/*/configs/*.yaml"))


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: f"{p.parent.parent.name}/{p.name}")
def test_every_shipped_config_passes_the_check(path):
    check_config(path)


def test_a_bad_value_is_found_without_building_anything(tmp_path):
    from tests.reliability.project import make_training_project

    config = make_training_project(tmp_path, epochs=1)
    check_config(config)
    with pytest.raises(UserInputError, match=r"tiny.yaml: trainer.params.nr_epochs: expected an integer >= 1"):
        check_config(config, ["trainer.params.nr_epochs=0"])
    with pytest.raises(UserInputError, match=r"model.params.latent_dim"):
        check_config(config, ["model.params.latent_dim=-4"])


@pytest.mark.parametrize("key, where", [
    ("downstream_tasks.anomaly_detection.data_loader.params.reading.labels=diagonal",
     "datasets.val_healthy.params.reading.labels: expected one of 'as_image', 'stretched'"),
    ("trainer.data_loader.params.reading.labels=diagonal", "trainer.data_loader.params.reading.labels: expected one of"),
    ("downstream_tasks.anomaly_detection.data_loader.params.reading.label=stretched", "did you mean 'labels'"),
])
def test_the_reading_labels_option_is_checked_as_the_other_reading_keys(key, where):
    """`reading.labels` (as_image | stretched) is checked on the evaluation sets and the data module alike."""
    with pytest.raises(UserInputError, match=where.replace(".", r"\.").replace("(", r"\(")):
        check_config(ROOT / "projects/RA/configs/ra_paper.yaml", [key])
