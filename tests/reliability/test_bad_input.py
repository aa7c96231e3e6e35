"""Every bad-input case ends in exit code 2 and one line, writes nothing and runs no pickle code."""
from __future__ import annotations

import pytest

from tests.reliability.cases import CASES, run_case


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
    assert not outcome.marker, "a pickle payload ran"
    assert not (tmp_path / "PWNED").exists()
