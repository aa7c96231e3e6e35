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
