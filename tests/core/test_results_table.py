"""The printed results table."""

from core.run.results import markdown_table


def test_a_task_skipped_on_every_set_is_one_row() -> None:
    results = {
        "paper_map": {"a": {"skipped": "weights missing"}, "b": {"skipped": "weights missing"}},
        "l1_map": {"a": {"AUPRC": 0.5}, "b": {"skipped": "other reason"}},
    }
    rows = markdown_table(results).splitlines()[2:]
    assert rows[0].startswith("| paper_map | all 2 data sets | skipped: weights missing |")
    assert rows[1].startswith("| l1_map | a | 0.500")
    assert rows[2].startswith("| l1_map | b | skipped: other reason |")
    assert len(rows) == 3
    assert len({r.count("|") for r in rows}) == 1  # every row has the header's columns


def test_per_volume_tables_are_written_from_the_typed_rows(tmp_path) -> None:
    """Each task's per_volume.csv and the run's merged one come from `EvaluationResult.per_volume`:
    fixed columns first, then the union in order; NaN as an empty cell; a task column in the merged file."""
    from core.evaluation.result import EvaluationResult
    from core.run.results import write_per_volume_tables

    first = [{"dataset": "t", "name": "a", "label": 1, "lesion_voxels": 3, "AUPRC": 0.5, "AUROC": float("nan"),
              "AUPRC_brain": 0.25, "AUROC_brain": 1.0, "Dice@x": 0.125, "seconds": 2.0}]
    second = [{"dataset": "h", "name": "b", "label": 0, "lesion_voxels": "", "AUPRC": float("nan"), "AUROC": float("nan"),
               "AUPRC_brain": float("nan"), "AUROC_brain": float("nan"), "rec_SSIM": 0.75}]
    write_per_volume_tables({"one": first, "two": second, "none": []}, tmp_path)
    fixed = "dataset,name,label,lesion_voxels,AUPRC,AUROC,AUPRC_brain,AUROC_brain"
    assert (tmp_path / "one" / "per_volume.csv").read_text().splitlines() == [f"{fixed},Dice@x,seconds", "t,a,1,3,0.5,,0.25,1.0,0.125,2.0"]
    assert (tmp_path / "two" / "per_volume.csv").read_text().splitlines() == [f"{fixed},rec_SSIM", "h,b,0,,,,,,0.75"]
    assert (tmp_path / "none" / "per_volume.csv").read_text().splitlines() == [fixed]
    assert (tmp_path / "per_volume.csv").read_text().splitlines() == [
        f"task,{fixed},Dice@x,seconds,rec_SSIM", "one,t,a,1,3,0.5,,0.25,1.0,0.125,2.0,", "two,h,b,0,,,,,,,,0.75"]
    write_per_volume_tables({}, tmp_path / "benchmark")  # a run without evaluated tasks: a header-only file
    assert (tmp_path / "benchmark" / "per_volume.csv").read_text().splitlines() == ["task"]
    assert EvaluationResult.skipped(["t"], "weights missing").is_skipped and not EvaluationResult().is_skipped


BOXED = {"detection": {"fastmri_test": {"AUPRC": 0.4, "DetectionRate@fpr_5%": 0.5, "DetectionRate@fixed_0.009": 0.8,
                                        "TP@fixed_0.009": 4.0, "FP@fixed_0.009": 3633.0, "Precision@fixed_0.009": 0.0011,
                                        "Recall@fixed_0.009": 0.8, "F1@fixed_0.009": 0.0022},
                       "ixi_test": {"AUPRC": 0.1}}}


def test_ra_box_figures_get_a_table_at_each_of_their_thresholds() -> None:
    """RA's evaluator reports TP, FP, precision, recall and F1 of its box localisation: the printed
    table (and results.md) shows them at the threshold they were computed at, RA's fixed 0.009 here."""
    from core.run.results import box_localisation_rows

    assert box_localisation_rows(BOXED) == [{"task": "detection", "data set": "fastmri_test", "threshold": "fixed_0.009",
                                            "DetectionRate": 0.8, "TP": 4.0, "FP": 3633.0, "Precision": 0.0011,
                                            "Recall": 0.8, "F1": 0.0022}]
    text = markdown_table(BOXED)
    assert "| task | data set | threshold | DetectionRate | TP | FP | Precision | Recall | F1 |" in text
    assert "| detection | fastmri_test | fixed_0.009 | 0.800 | 4.000 | 3633 | 0.001 | 0.800 | 0.002 |" in text
    assert "box localisation" not in markdown_table({"detection": {"ixi_test": {"AUPRC": 0.1}}})


def test_the_report_shows_the_box_figures() -> None:
    from core.run.report import _results_part

    page = _results_part(BOXED).html
    assert "box localisation" in page and "<th>Precision</th>" in page and "<th>F1</th>" in page and "3633" in page


def test_skipped_tasks_names_the_tasks_that_evaluated_nothing():
    from core.run.run_files import skipped_tasks
    results = {"training": {"summary": {"epochs": 1}},
               "l1": {"test_a": {"AUPRC": 0.5}, "test_b": {"skipped": "no labels"}},
               "lpips": {"test_a": {"skipped": "LPIPS SqueezeNet weights not found"}, "test_b": {"skipped": "LPIPS SqueezeNet weights not found"}}}
    assert skipped_tasks(results) == {"lpips": "LPIPS SqueezeNet weights not found"}
