"""requirements.txt and ra_environment.yaml pin the same packages."""
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def _pins(lines):
    return {line.split("==")[0].lower(): line.split("==")[1] for line in lines if "==" in line and not line.startswith("#")}


def test_requirements_and_conda_environment_agree():
    req = _pins([l.strip() for l in (ROOT / "requirements.txt").read_text().splitlines()])
    env = yaml.safe_load((ROOT / "ra_environment.yaml").read_text())
    pip_list = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert req == _pins(pip_list)
    assert req["torch"] == "2.14.1" and req["torchvision"] == "0.29.1"
