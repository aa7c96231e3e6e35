"""Which raw scans to preprocess: a folder of NIfTI files or a CSV of subjects."""
from __future__ import annotations

import re
from pathlib import Path

from data.raw_preprocessing.pipeline import SubjectInput
from dl_utils.csv_files import read_csv
from dl_utils.errors import UserInputError
from dl_utils.paths import check_component

NIFTI_SUFFIXES = (".nii", ".nii.gz")
CSV_COLUMNS = ("subject", "t1", "t2", "seg", "mask", "age", "label")


def scan_name(path: Path) -> str:
    """File name without .nii / .nii.gz, made safe for a folder name (refused when that leaves
    '.' or '..', e.g. `...nii.gz`: it would name the output folder or its parent)."""
    name = path.name[:-7] if path.name.endswith(".nii.gz") else path.stem
    return check_component(re.sub(r"[^A-Za-z0-9._-]", "_", name), f"{path}: scan name")


def check_unique_names(names: list[tuple[str, str]], source: Path) -> None:
    """Refuse two inputs whose output names are equal after sanitising (`x y` and `x_y`): the second
    would overwrite the first's outputs, or be skipped as done. `names`: (output name, where it came from)."""
    first: dict[str, str] = {}
    for name, origin in names:
        if name in first:
            raise UserInputError(f"{source}: {first[name]} and {origin} both become the name '{name}' (characters other "
                                 "than letters, digits, '.', '_', '-' turn into '_'); rename one of them")
        first[name] = origin


def is_nifti(path: Path) -> bool:
    return path.is_file() and path.name.endswith(NIFTI_SUFFIXES)


def read_subjects(source: str | Path) -> list[SubjectInput]:
    """A folder: every NIfTI file is one subject's T1. A CSV: columns subject, t1 and optionally
    t2, seg, mask, age, label (paths relative to the CSV's folder)."""
    source = Path(source)
    if source.is_dir():
        scans = sorted(p for p in source.iterdir() if is_nifti(p))
        if not scans:
            raise UserInputError(f"{source}: no .nii / .nii.gz files; point --input at a folder of scans or a CSV")
        subjects = [SubjectInput(scan_name(p), p) for p in scans]
        check_unique_names([(s.name, s.t1.name) for s in subjects], source)
        return subjects
    if is_nifti(source):
        return [SubjectInput(scan_name(source), source)]
    if not source.is_file():
        raise UserInputError(f"{source}: not found; give a folder of NIfTI scans, one scan or a CSV")
    if source.suffix.lower() != ".csv":
        raise UserInputError(f"{source}: not a NIfTI scan ({' / '.join(NIFTI_SUFFIXES)}) nor a CSV; give a scan, a folder "
                             "of scans or a CSV of subjects")
    table = read_csv(source, "give a CSV of subjects, a scan or a folder of scans")
    if "t1" not in table.columns:
        raise UserInputError(f"{source}: CSV needs a 't1' column (optional: {', '.join(CSV_COLUMNS)})")
    out, seen = [], set()
    for line, row in table.rows:
        if not row.get("t1"):
            continue

        def path(key: str) -> Path | None:
            value = row.get(key, "")
            return (source.parent / value) if value and not Path(value).is_absolute() else (Path(value) if value else None)

        name = row.get("subject") or scan_name(path("t1"))
        if name in seen:
            raise UserInputError(f"{source} line {line}: subject '{name}' appears twice; subject names must be unique")
        seen.add(name)
        label = row.get("label", "")
        if label not in ("", "0", "1"):
            raise UserInputError(f"{source} line {line}: label '{label}' must be 0, 1 or empty")
        safe = check_component(re.sub(r"[^A-Za-z0-9._-]", "_", name), f"{source} line {line}: subject")  # '..' stays '..'
        out.append(SubjectInput(safe, path("t1"), path("t2"), path("seg"),
                                path("mask"), row.get("age", ""), int(label) if label else None))
    if not out:
        raise UserInputError(f"{source}: no rows with a t1 path")
    check_unique_names([(s.name, f"subject '{s.name}' ({s.t1.name})") for s in out], source)
    return out
