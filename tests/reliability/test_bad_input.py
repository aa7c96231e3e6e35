"""Every bad-input case ends in exit code 2 and one line, writes nothing and runs no pickle code."""
from __future__ import annotations

import gc

import pytest
import yaml

from tests.reliability.cases import CASES, run_case


@pytest.fixture(scope="module", autouse=True)
def _collect_only_what_cases_made():
    """`run_case` collects garbage before each case (files an earlier crashed case left open are closed then,
    not inside the next one): with what the worker holds before the first case frozen, a collection visits
    only what the cases made (a full one takes ~0.25 s with torch loaded, half a case's time)."""
    gc.collect()
    gc.freeze()
    yield
    gc.unfreeze()


def _param(case):
    marks = [pytest.mark.xfail(strict=True, reason=case.pending)] if case.pending else []
    return pytest.param(case, marks=marks, id=case.name.replace(" ", "_"))


@pytest.mark.parametrize("case", [_param(c) for c in CASES])
def test_bad_input_is_one_line_and_writes_nothing(case, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    outcome = run_case(case, tmp_path / "project")
    assert outcome.code == 2, outcome.lines
    assert len(outcome.lines) == 1 and outcome.lines[0].startswith("error: "), outcome.lines
    assert case.expected in outcome.lines[0], outcome.lines[0]
    assert outcome.changed == [], f"the failed run wrote or changed {outcome.changed}"
    assert [p.name for p in tmp_path.iterdir()] == ["project"], "the failed run wrote outside its working directory"
    assert not outcome.marker, "a pickle payload ran"
    assert not (tmp_path / "PWNED").exists()


@pytest.mark.parametrize("opt_in", [True, False], ids=["opt_in_inside", "no_opt_in"])
def test_report_opens_a_hostile_run_folder_without_running_anything(opt_in, tmp_path, monkeypatch):
    """`uad report` reads a run folder's files and builds nothing: a config.yaml (and a checkpoint) naming
    a shell command is shown, never run; the page is the only file written."""
    from tests.reliability.cases import Case, _hostile_checkpoint, _hostile_config, _shared_run, _uad

    def build(root, config):
        hostile = {**_hostile_config(config, root, "model"), **({"allow_external_modules": True} if opt_in else {})}
        args = _shared_run(yaml.safe_dump(hostile), results_text='{"detection": {"test": {"AUROC": 0.5}}}', verb="report")(root, config)
        return [*args, "--model", _hostile_checkpoint(root, config, "model")]

    monkeypatch.chdir(tmp_path)
    outcome = run_case(Case("report: hostile run folder", "hostile", "", _uad(build)), tmp_path / "project")
    assert outcome.code == 0, outcome.lines
    assert outcome.changed == ["shared_run/report.html"], outcome.changed
    assert not outcome.marker and not (tmp_path / "PWNED").exists()
