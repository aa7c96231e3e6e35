"""Fixtures shared by the tests of core/."""
from __future__ import annotations

import pytest

from tests.core.report_folders import ReportFolders, make_report_folders


@pytest.fixture(scope="session")
def report_folders(tmp_path_factory) -> ReportFolders:
    """A tiny benchmark (two evaluated runs) and a `uad predict` output, each with its report.html."""
    return make_report_folders(tmp_path_factory.mktemp("report_folders"))
