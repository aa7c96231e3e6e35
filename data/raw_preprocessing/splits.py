"""Volume-layout split CSVs of a preprocessed folder, with seeded k folds over healthy subjects.

Each row also names its `subject` (one subject per row: `uad preprocess` takes one scan per
subject name), so a model trained on these splits records how many subjects it saw
(`data.trained_on`, which counts that column)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from data.csv_splits import VOLUME_COLUMNS
from data.raw_preprocessing.pipeline import SubjectInput, subject_files
from dl_utils.checkpoint import atomic_write_csv

SPLIT_COLUMNS = (*VOLUME_COLUMNS, "subject")


def _row(subject: SubjectInput, root: Path) -> dict[str, str] | None:
    folder = root / "subjects" / subject.name
    files = subject_files(subject.name)
    if not (folder / files["transform"]).is_file():
        return None
    has_seg = (folder / files["seg"]).is_file()
    label = subject.label if subject.label is not None else int(has_seg)
    rel = f"subjects/{subject.name}/"
    return {"img_name": subject.name, "subject": subject.name, "age": subject.age, "label": str(label), "img_path": rel + files["t1"],
            "mask_path": rel + files["mask"], "seg_path": rel + files["seg"] if has_seg else ""}


def write_splits(subjects: list[SubjectInput], root: str | Path, folds: int = 5, seed: int = 0) -> list[Path]:
    """`splits/all.csv`, `splits/anomalous.csv` (label 1) and, over the healthy subjects,
    `splits/train_fold<i>.csv` / `splits/val_fold<i>.csv` (seeded permutation, k folds).
    Paths are relative to `root` (the config's data_root); the last column names each row's subject.
    Only finished subjects are listed."""
    root = Path(root)
    rows = [r for r in (_row(s, root) for s in subjects) if r is not None]
    written = [root / "splits" / "all.csv"]
    atomic_write_csv(written[0], rows, SPLIT_COLUMNS)
    anomalous = [r for r in rows if r["label"] == "1"]
    if anomalous:
        written.append(root / "splits" / "anomalous.csv")
        atomic_write_csv(written[-1], anomalous, SPLIT_COLUMNS)
    healthy = [r for r in rows if r["label"] == "0"]
    k = min(int(folds), len(healthy))
    if k >= 2:
        order = np.random.default_rng(seed).permutation(len(healthy))
        for fold, val_idx in enumerate(np.array_split(order, k)):
            val_set = set(val_idx.tolist())
            for kind, part in (("train", [healthy[i] for i in order if i not in val_set]),
                               ("val", [healthy[i] for i in sorted(val_set)])):
                written.append(root / "splits" / f"{kind}_fold{fold}.csv")
                atomic_write_csv(written[-1], part, SPLIT_COLUMNS)
    return written
