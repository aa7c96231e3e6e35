"""Names that become path components, and joins that must stay inside their folder (dl_utils/paths.py)."""
from __future__ import annotations

import os

import pytest

from dl_utils.errors import UserInputError
from dl_utils.paths import check_component, check_links_stay_inside, component_problem, flat_name, inside


@pytest.mark.parametrize("name, ok", [
    ("t0", True), ("IXI002-Guys_0828.t1", True), ("a..b", True), ("..", False), (".", False), ("", False), ("  ", False),
    ("../x", False), ("a/b", False), ("a\\b", False), ("/etc", False), ("x\x00", False), (3, False), (None, False),
    ("a" * 128, True), ("a" * 129, False), ("\u00e9" * 64, True), ("\u00e9" * 65, False),  # MAX_COMPONENT_BYTES, in UTF-8
])
def test_a_component_is_one_plain_name(name, ok):
    assert (component_problem(name) is None) == ok


def test_check_component_names_what_and_the_fix():
    assert check_component("t0", "img_name") == "t0"
    with pytest.raises(UserInputError, match=r"^split.csv line 3: img_name '../../X' holds a path separator; .*one plain name"):
        check_component("../../X", "split.csv line 3: img_name")
    with pytest.raises(UserInputError, match=r"^t.csv line 4: img_name 'a{40}\.\.\.' is 300 bytes long \(at most 128"):
        check_component("a" * 300, "t.csv line 4: img_name")  # (a file name over 255 bytes failed when its map was written)


def test_inside_refuses_a_join_that_leaves_the_folder(tmp_path):
    assert inside(tmp_path, "maps", "t0_anomaly_map.nii.gz") == tmp_path / "maps" / "t0_anomaly_map.nii.gz"
    assert inside(tmp_path, "a/../b") == tmp_path / "a/../b"  # normalised, still inside
    for escaping in ("../x", "a/../../x", "/etc/passwd"):
        with pytest.raises(UserInputError, match="leads outside"):
            inside(tmp_path, escaping)


def test_flat_name_is_unique_and_plain():
    assert flat_name("/data/fastMRI/brain/x.png", "/data/fastMRI") == "brain__x.png"
    assert flat_name("/elsewhere/x.png", "/data") == "elsewhere__x.png"
    assert flat_name("brain/x.png") == "brain__x.png"
    assert component_problem(flat_name("../../x.png")) is None


def test_a_deep_path_is_a_short_unique_name_ending_in_its_file_name():
    deep = "/".join(["ü" * 30] * 10)
    a, b = flat_name(f"{deep}/a/slice_001.png"), flat_name(f"{deep}/b/slice_001.png")
    assert component_problem(a) is None and component_problem(b) is None
    assert a != b and a.endswith("slice_001.png") and b.endswith("slice_001.png")


def test_links_inside_a_run_folder_are_fine_links_leaving_it_are_refused(tmp_path):
    run, outside = tmp_path / "run", tmp_path / "outside"
    (run / "checkpoints").mkdir(parents=True)
    outside.mkdir()
    (run / "checkpoints" / "best_model.pt").write_text("x")
    os.symlink(run / "checkpoints" / "best_model.pt", run / "best.pt")  # inside: fine
    check_links_stay_inside(run, "copy it")
    os.symlink(outside, run / "checkpoints" / "maps")
    with pytest.raises(UserInputError, match=r"checkpoints/maps is a symbolic link to .*outside, outside the folder"):
        check_links_stay_inside(run, "copy it")
