"""report.html in a real headless Chromium (Debian's package, driven by chromedriver): for a run,
a benchmark and a `uad predict` output the page loads with no console error and no request,
shows every method, sorts the per-volume table by score, and a slider changes the slice; a
shipped demo config's page shows each of its tasks and test sets. Without a browser they skip
(`pytest -rs` shows why), or fail under `UAD_REQUIRE_BROWSER=1`, as CI runs them."""
from __future__ import annotations

import json
import re

import numpy as np
import pytest

from core.Main import main
from core.run.report import REPORT_FILE
from core.run.results import read_results
from dl_utils.report import html
from dl_utils.report.volumes import Layer, LayerKind, Panel, viewer
from tests import chromium
from tests.demo_like_data import write_demo_like
from tests.test_projects_end_to_end import ROOT, shrink

READY = "return document.documentElement.dataset.ready"
PLANE = ".viewer .plane[data-plane='{plane}']"
STATE = """const plane = document.querySelector(arguments[0]);
return [plane.querySelector('input.slice').value, plane.querySelector('.slice-label').textContent,
        Array.from(plane.querySelectorAll('canvas'), (c) => c.toDataURL())];"""


@pytest.fixture(scope="module")
def browser():
    """The browser session; without chromium / chromedriver every test here skips, or fails under UAD_REQUIRE_BROWSER=1."""
    chromium.require_or_skip()
    with chromium.Browser() as session:
        yield session


def _load(browser: chromium.Browser, folder) -> None:
    browser.console()  # drop what earlier pages logged
    browser.open(folder / REPORT_FILE)
    assert browser.wait_for(READY) == "true"
    errors = [e for e in browser.console() if e.get("level") == "SEVERE"]
    assert errors == [], errors
    assert browser.run("return performance.getEntriesByType('resource').length") == 0  # nothing fetched


def _slider_changes_the_slice(browser: chromium.Browser) -> None:
    for plane in range(3):
        css = PLANE.format(plane=plane)
        value, label, pictures = browser.run(STATE, css)
        top = int(browser.run("return document.querySelector(arguments[0]).max", f"{css} input.slice"))
        browser.press(f"{css} input.slice", "left" if int(value) > top // 2 else "right")  # a real key press
        moved, moved_label, moved_pictures = browser.run(STATE, css)
        assert moved != value and moved_label != label and moved_label.split()[-3] == moved
        assert moved_pictures != pictures, f"plane {plane}: the pictures did not change with the slice"
        assert all(p.startswith("data:image/png") and len(p) > 200 for p in moved_pictures)


def _sorts_by(browser: chromium.Browser, column: str) -> None:
    index = browser.run("""return Array.from(document.querySelectorAll('#per-volume th'), (th) => th.textContent)
                           .indexOf(arguments[0]);""", column)
    assert index >= 0, f"no column {column}"
    cells = "return Array.from(document.querySelectorAll('#per-volume tbody tr'), (tr) => tr.cells[arguments[0]].dataset.v)" \
            ".filter((v) => v !== undefined).map(Number);"
    browser.click(f"#per-volume th:nth-child({index + 1})")
    ascending = browser.run(cells, index)
    browser.click(f"#per-volume th:nth-child({index + 1})")
    descending = browser.run(cells, index)
    assert len(ascending) >= 2 and ascending == sorted(ascending) and descending == sorted(ascending, reverse=True)


def test_run_report(browser, report_folders):
    for run in report_folders.runs.values():
        _load(browser, run)
        captions = browser.run("return Array.from(document.querySelectorAll('.viewer figcaption'), (f) => f.textContent)")
        assert any(c.startswith("anomaly map") for c in captions) and "input + ground truth" in captions
        absent = browser.run("return Array.from(document.querySelectorAll('.viewer figure.absent'), (f) => f.innerText)")
        if (run / "checkpoints" / "best_model.pt").is_file():  # the AE reconstructs: its reconstruction is drawn
            assert captions.count("reconstruction") == 3 * 2 and absent == []  # 3 planes x 2 volumes
        else:  # the Threshold baseline has no model: the panel says so
            assert "reconstruction" not in captions
            assert absent == ["reconstruction\nnone (model-free scorer)"] * 3 * 2, absent
        assert browser.run("return document.querySelectorAll('#curves svg polyline').length") == 2  # ROC and PR
        _sorts_by(browser, "sample_score")
        _slider_changes_the_slice(browser)


def check_benchmark_page(browser: chromium.Browser, folder) -> None:
    """A benchmark's page: loads cleanly, every method of methods.json is in the comparison table and,
    where it was evaluated (not skipped), has its ROC and PR curve per labelled test set and its maps
    in the viewers (a method of several tasks is shown as `method [task]`); a skipped task is named
    with its reason in the methods table."""
    _load(browser, folder)
    methods = json.loads((folder / "methods.json").read_text())["methods"]
    compared = browser.run("return Array.from(document.querySelectorAll('#comparison tbody tr'), (tr) => tr.cells[0].textContent)")
    legends = browser.run("return Array.from(document.querySelectorAll('#curves svg polyline title'), (t) => t.textContent)")
    captions = browser.run("return Array.from(document.querySelectorAll('.viewer figcaption'), (f) => f.textContent)")
    method_cells = browser.run("return Array.from(document.querySelectorAll('#methods tbody tr'), "
                               "(tr) => Array.from(tr.cells, (c) => c.textContent))")
    skipped_cell = {cells[0]: cells[-1] for cells in method_cells}
    checked = []
    for method, run in methods.items():
        results = read_results(folder / run)
        for task, sets in results.items():  # a task that evaluated nothing is named on the page, with why
            if sets and all("skipped" in m for m in sets.values()):
                assert f"{task}: {next(iter(sets.values()))['skipped']}" in skipped_cell[method], (method, task)
        evaluated = [m for task, sets in results.items() if task != "training" for m in sets.values() if "AUPRC" in m]
        if not evaluated:  # a training-only method (Spark pre-training) or one whose tasks were all skipped
            continue
        named = re.compile(rf"{re.escape(method)}( \[[^\]]+\])?")
        assert any(named.fullmatch(c) for c in compared), (method, compared)
        drawn = sum(bool(re.match(rf"{named.pattern} \(", legend)) for legend in legends)
        assert drawn == 2 * len(evaluated), (method, drawn, len(evaluated))  # its ROC and PR curve per labelled test set
        assert any(re.match(rf"{named.pattern}: map", c) for c in captions), method
        checked.append(method)
    assert checked, f"no evaluated method in {folder}"
    _sorts_by(browser, "sample_score")
    _slider_changes_the_slice(browser)


def test_benchmark_report_shows_every_method(browser, report_folders):
    check_benchmark_page(browser, report_folders.benchmark)
    assert browser.run("return document.querySelectorAll('.viewer').length") == 2  # each test volume once


def test_predict_report(browser, report_folders):
    _load(browser, report_folders.predict)
    captions = browser.run("return Array.from(document.querySelectorAll('.viewer figcaption'), (f) => f.textContent)")
    assert "input + predicted mask" in captions and "reconstruction" in captions
    assert browser.run("return document.querySelectorAll('.viewer').length") == 2
    _sorts_by(browser, "sample_score")
    _slider_changes_the_slice(browser)


def test_a_demo_config_page_shows_every_task_and_test_set(browser, tmp_path):
    """ra_test.yaml (the shipped RA demo weights; two tasks: the LPIPS map, skipped with its reason where
    torchvision's SqueezeNet file is absent, and l1) on demo-like data: every task and test set of
    results.json is on the page."""
    config = ROOT / "projects" / "RA" / "configs" / "ra_test.yaml"
    overrides = shrink(config, write_demo_like(tmp_path / "data", per_split=1), tmp_path / "runs", training=False)
    assert main(["--config_path", str(config), "--quiet", *overrides]) == 0
    (run,) = [p.parent for p in (tmp_path / "runs").rglob(REPORT_FILE)]
    _load(browser, run)
    text = browser.run("return document.body.innerText")
    results = {task: sets for task, sets in read_results(run).items() if task != "training"}
    assert len(results) == 2 and sum(len(sets) for sets in results.values()) >= 8
    for task, sets in results.items():
        assert task in text
        for name in sets:
            assert name in text, f"{task}: {name}"
    _slider_changes_the_slice(browser)


def test_a_thick_slice_volume_shows_every_slice_in_its_true_aspect(browser, tmp_path):
    """A 1 x 1 x 7 mm scan of 200 x 232 x 33 voxels: x and y are thinned to fit 128, the axial slider
    reaches the 33rd slice, and each plane is drawn in mm (coronal: 200 mm wide, 231 mm high)."""
    image = np.random.default_rng(0).uniform(0, 1, (200, 232, 33)).astype(np.float32)
    body, _ = viewer("v", "thick", {"in": Layer(image, LayerKind.INTENSITY)}, [Panel("input", "in")], spacing=(1.0, 1.0, 7.0))
    (tmp_path / REPORT_FILE).write_text(html.page("thick slices", "", [body], []))
    _load(browser, tmp_path)
    axial = f"{PLANE.format(plane=0)} input.slice"
    browser.press(axial, "end")
    assert browser.run(STATE, PLANE.format(plane=0))[1] == "z = 32 / 32"
    width, height = browser.run("const c = document.querySelector(arguments[0]); return [c.style.width, c.style.height];",
                                f"{PLANE.format(plane=1)} canvas")
    assert float(height.removesuffix("px")) / float(width.removesuffix("px")) == pytest.approx(231 / 200, rel=0.01)


def test_a_2d_image_is_drawn_as_its_file_has_it(browser, tmp_path):
    """A 2D image (rows, columns, 1) of an image list: one canvas of columns x rows, its top-right pixel
    (row 0, last column) lit top right (read back from the canvas), no slider, no slice label."""
    image = np.zeros((6, 10, 1), np.float32)
    image[0, 9, 0] = 1.0
    body, _ = viewer("v", "2d", {"in": Layer(image, LayerKind.INTENSITY)}, [Panel("input", "in")], image_2d=True)
    (tmp_path / REPORT_FILE).write_text(html.page("a 2D image", "", [body], []))
    _load(browser, tmp_path)
    assert browser.run("return document.querySelectorAll('.viewer .plane').length") == 1
    assert browser.run("return document.querySelectorAll('.viewer input.slice, .viewer .slice-label').length") == 0
    size, lit = browser.run("""const c = document.querySelector('.viewer canvas');
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        const lit = [];
        for (let i = 0; i < d.length; i += 4) if (d[i] > 128) lit.push([(i / 4) % c.width, Math.floor(i / 4 / c.width)]);
        return [[c.width, c.height], lit];""")
    assert size == [10, 6] and lit == [[9, 0]]


def test_a_missing_browser_skips_with_its_reason_or_fails_when_required(monkeypatch):
    """CI sets UAD_REQUIRE_BROWSER=1 (.ci/run): there a machine without chromium fails these tests, not skips them."""
    monkeypatch.setattr(chromium, "binaries", lambda: ("/usr/bin/chromium", None))
    monkeypatch.delenv(chromium.REQUIRE, raising=False)
    with pytest.raises(pytest.skip.Exception, match="chromedriver not installed"):
        chromium.require_or_skip()
    monkeypatch.setenv(chromium.REQUIRE, "1")
    with pytest.raises(pytest.fail.Exception, match="UAD_REQUIRE_BROWSER=1 but chromedriver not installed"):
        chromium.require_or_skip()
    monkeypatch.setattr(chromium, "binaries", lambda: ("/usr/bin/chromium", "/usr/bin/chromedriver"))
    chromium.require_or_skip()  # both there: the tests run


def test_the_test_command_shows_skip_reasons_and_ci_requires_the_browser():
    """The README's test command (test.sh) lists each skip with its reason; CI (.ci/run) runs it with the browser required."""
    pytest_lines = [line for line in (ROOT / "test.sh").read_text().splitlines() if " -m pytest " in line]
    assert pytest_lines and all(" -rs " in line for line in pytest_lines)
    ci = [line for line in (ROOT / ".ci" / "run").read_text().splitlines() if "test.sh" in line and not line.startswith("#")]
    assert ci == [f"{chromium.REQUIRE}=1 bash test.sh"]
