"""origin.json records where a run came from: config, --set values, code commit, software."""
import json
import subprocess
from pathlib import Path

import torch

from core.run.run_folder import ORIGIN_FILE, write_run_config
from projects.benchmark.results_doc import _provenance

ROOT = Path(__file__).resolve().parents[2]


def test_origin_names_the_code_commit_and_software(tmp_path):
    write_run_config(tmp_path, {"name": "x"}, Path("projects/AE/configs/ae.yaml"), ["seed=3"])
    origin = json.loads((tmp_path / ORIGIN_FILE).read_text())
    assert origin["config_path"] == "projects/AE/configs/ae.yaml" and origin["overrides"] == ["seed=3"]
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    if head.returncode == 0:  # a git checkout (CI clones one)
        assert origin["commit"] == head.stdout.strip()
        assert isinstance(origin["uncommitted_changes"], bool)
    assert origin["torch"] == torch.__version__ and origin["cpu_threads"] == torch.get_num_threads()


def test_results_doc_reports_the_run_commit_not_the_readers(tmp_path):
    (tmp_path / ORIGIN_FILE).write_text(json.dumps({
        "config_path": "c.yaml", "overrides": [], "commit": "0123456789abcdef", "uncommitted_changes": True,
        "python": "3.11.7", "torch": "2.14.1", "platform": "Linux-x", "cpu_threads": 2}))
    text = _provenance(tmp_path)
    assert "commit 0123456 with uncommitted changes" in text and "torch 2.14.1, 2 CPU threads" in text
    (tmp_path / ORIGIN_FILE).unlink()  # a run recorded before origin.json held provenance
    assert "commit unknown" in _provenance(tmp_path)
