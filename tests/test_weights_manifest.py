"""Every shipped weight file is listed in weights/manifest.json with its sha256 and loads safely."""
import hashlib
import json
from pathlib import Path

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
