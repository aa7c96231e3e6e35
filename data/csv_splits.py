"""Reading split CSVs (volume layout and iml-dl image lists) with one-line errors."""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from dl_utils.csv_files import read_csv
from dl_utils.errors import UserInputError
from dl_utils.options import parse_option
from dl_utils.paths import check_component

LOG = logging.getLogger(__name__)
VOLUME_COLUMNS = ("img_name", "age", "label", "img_path", "mask_path", "seg_path")


class Contrast(StrEnum):
    """Which contrast a split's `img_path` names (the originals' `mode`)."""

    T1 = "t1"
    T2 = "t2"  # img_path's `t1` folder and file-name suffix -> `t2` ('FLAIR.nii.gz' -> 't2.nii.gz'), as their datamodules


# Data sets the originals hold in T1 only (their data layout: Test/ATLAS_v2/{mask,t1,seg}); their ATLAS_v2
# datamodule never rewrites img_path, so a `mode: t2` run reads these T1 scans, and so does ours.
T1_ONLY_FOLDERS = frozenset({"ATLAS_v2"})


@dataclass(frozen=True)
class SplitRow:
    """One row of a volume-layout split; paths resolved against the data root."""

    img_name: str
    age: float  # NaN when unknown
    label: int
    img_path: Path
    mask_path: Path
    seg_path: Path | None
    line: int = field(default=0, compare=False)  # the CSV line it was read from (0: not read from a CSV)


def resolve(path: str, data_root: str | os.PathLike | None, where: str = "") -> Path:
    """A split-CSV path under `data_root` (or as given when there is no root); never outside it.

    Relative paths resolve against `data_root` and must stay inside it. An absolute path
    outside `data_root` is read under it: the authors' split CSVs write `/Train/ixi/...`
    meaning `<data folder>/Train/ixi/...` (their `pathBase + '/Data/' + path`)."""
    p = Path(path).expanduser()
    if data_root is None:
        return p
    root = Path(os.path.normpath(data_root))
    if p.is_absolute():
        joined = Path(os.path.normpath(p))
        if joined == root or root in joined.parents:
            return joined
        p = Path(str(p).lstrip("/"))
    joined = Path(os.path.normpath(root / p))
    if joined != root and root not in joined.parents:
        raise UserInputError(f"{where or 'split CSV'}: path '{path}' escapes data_root {data_root}; "
                             "paths in a split CSV must stay inside data_root")
    return root / p


def t1_only(img_path: str) -> bool:
    """Whether `img_path` lies under a folder of `T1_ONLY_FOLDERS` (a data set with T1 scans only)."""
    return not T1_ONLY_FOLDERS.isdisjoint(img_path.rpartition("/")[0].split("/"))


def contrast_path(img_path: str, mode: Contrast) -> str:
    """`img_path` of the chosen contrast: a folder named `t1` becomes `mode`, and so does the `t1` of
    a file name ending `t1.nii.gz` / `t1.nii` (`FLAIR.nii.gz` -> `<mode>.nii.gz`). A path under a
    folder of `T1_ONLY_FOLDERS` (ATLAS_v2) is returned as it is: the originals' ATLAS_v2 datamodule
    never rewrites, so their `mode: t2` runs read its T1 scans (the only ones their layout has).

    The file each original reads on every row of their released split CSVs (recorded:
    tests/projects/test_paper_contrast.py): their IXI, BraTS21 and WMH `str.replace('t1', mode)` on
    the whole path gives the same there, their ATLAS_v2 rows stay T1 as here, and their MSLUB rewrite
    (Mahalanobis / Ensembled-SSIM repositories: `MSLUB/t1` and `t1.nii.gz`) too, which the
    whole-path replace does not: it turns `patient13_t1` into `patient23_t2`, another subject's scan.
    """
    mode = parse_option(Contrast, mode, "mode")
    if mode == Contrast.T1 or t1_only(img_path):
        return img_path
    folder, sep, name = img_path.rpartition("/")
    folder = "/".join(mode.value if part == "t1" else part for part in folder.split("/"))
    for suffix in ("t1.nii.gz", "t1.nii", "FLAIR.nii.gz"):
        if name.endswith(suffix):
            name = name[: -len(suffix)] + mode.value + suffix.removeprefix("FLAIR").removeprefix("t1")
            break
    return folder + sep + name


def _config_path(path: str, data_root: str | os.PathLike | None) -> Path:
    """A split CSV named in the config (relative to data_root); the config is trusted, its rows are not."""
    p = Path(path).expanduser()
    if data_root is None:
        return p
    if p.is_absolute():
        inside = Path(data_root) / str(p).lstrip("/")
        return inside if not p.exists() and inside.exists() else p
    return Path(data_root) / p


def _read_rows(csv_path: Path, required: Sequence[str]) -> list[tuple[int, dict[str, str]]]:
    """(file line, row) of each non-empty row of a split CSV (`dl_utils.csv_files.read_csv`: UTF-8, every
    error one line naming the file and line), after checking that its header has the `required` columns."""
    if not csv_path.is_file():
        raise UserInputError(f"split CSV not found: {csv_path}; fix the path or data_root in the config")
    table = read_csv(csv_path, f"a split CSV is UTF-8 text with the columns {', '.join(required)}")
    missing = [c for c in required if c not in table.columns]
    if missing:
        raise UserInputError(
            f"split CSV {csv_path} lacks column(s) {', '.join(missing)}; "
            f"its header must contain {', '.join(required)}"
        )
    rows = [(line, row) for line, row in table.rows if any(row.values())]
    if not rows:
        raise UserInputError(f"split CSV {csv_path} has no rows; add at least one entry")
    return rows


def read_keep_list(csv_path: str | os.PathLike, data_root: str | os.PathLike | None) -> set[str]:
    """The T1 names of the originals' `avail_t2.csv` (column `0`: T2 scan names that have a T1
    counterpart; their datamodule keeps a row if its img_name is a listed name with 't2' -> 't1')."""
    path = _config_path(str(csv_path), data_root)
    return {row["0"].replace("t2", "t1") for _, row in _read_rows(path, ("0",)) if row["0"]}


def mode_rewrites(csv_path: str | os.PathLike, data_root: str | os.PathLike | None, mode: Contrast) -> bool:
    """Whether `mode` changes the scans a split names (some `img_path` names a `t1` scan that
    `contrast_path` rewrites); else `read_volume_split` reads the split as given."""
    mode = parse_option(Contrast, mode, "mode")
    rows = _read_rows(_config_path(str(csv_path), data_root), VOLUME_COLUMNS)
    return mode is not Contrast.T1 and any(contrast_path(r["img_path"], mode) != r["img_path"] for _, r in rows)


def read_volume_split(csv_path: str | os.PathLike, data_root: str | os.PathLike | None,
                      mode: Contrast = Contrast.T1, keep_list: str | os.PathLike | None = None) -> list[SplitRow]:
    """Rows of a volume-layout CSV (columns img_name, age, label, img_path, mask_path, seg_path;
    other columns, e.g. the originals' unnamed index, are ignored).

    Label 1 rows need a seg_path. A row repeated exactly (same name and paths) is kept, as
    the originals keep it (their IXI folds list 10-13 scans twice), with one warning per
    file; one name with different paths is an error. `mode: t2` picks the T2 of each row
    (`contrast_path`; an ATLAS_v2 row stays T1, as the originals read it, with one info line);
    `keep_list` (with `mode: t2`, the originals' `keep_t2`, `avail_t2.csv`) drops the rows
    whose subject has no T2 scan, as their IXI datamodule does. It concerns the rows that name
    a T1 scan (those `mode: t2` rewrites) and is read at the first of them: a split that names
    no T1 scan (the demo data: one contrast, no `t1` in its paths) is read as given.
    """
    csv_path = _config_path(str(csv_path), data_root)
    mode = parse_option(Contrast, mode, "mode")
    if keep_list is not None and mode is not Contrast.T2:
        raise UserInputError(f"keep_list {keep_list}: the originals' T2 subject filter (avail_t2.csv) "
                             "applies with mode: t2 only; remove it or set mode: t2")
    keep: set[str] | None = None
    out, seen, repeated, dropped, as_t1 = [], {}, [], 0, 0
    for line, row in _read_rows(csv_path, VOLUME_COLUMNS):
        if keep_list is not None and contrast_path(row["img_path"], mode) != row["img_path"]:
            keep = read_keep_list(keep_list, data_root) if keep is None else keep
            if row["img_name"] not in keep:
                dropped += 1
                continue
        where = f"split CSV {csv_path} line {line}"
        if row["label"] not in ("0", "1"):
            raise UserInputError(f"{where}: label '{row['label']}' must be 0 or 1")
        if not row["img_path"] or not row["mask_path"]:
            raise UserInputError(f"{where}: img_path and mask_path must not be empty")
        label = int(row["label"])
        if label == 1 and not row["seg_path"]:
            raise UserInputError(f"{where}: label 1 needs a seg_path with the lesion labels")
        try:
            age = float(row["age"]) if row["age"] else math.nan
        except ValueError:
            raise UserInputError(f"{where}: age '{row['age']}' is not a number; leave it empty if unknown") from None
        name = check_component(row["img_name"] or Path(row["img_path"]).name, f"{where}: img_name")  # names its map file
        key = (row["img_path"], row["mask_path"], row["seg_path"], label)
        if name in seen:
            if seen[name] != key:
                raise UserInputError(f"{where}: img_name '{name}' appears twice with different paths; names must be unique")
            repeated.append(name)
        seen[name] = key
        seg = resolve(row["seg_path"], data_root, where) if row["seg_path"] else None
        as_t1 += mode is not Contrast.T1 and t1_only(row["img_path"])
        out.append(SplitRow(name, age, label, resolve(contrast_path(row["img_path"], mode), data_root, where),
                            resolve(row["mask_path"], data_root, where), seg, line))
    if repeated:
        LOG.warning("split CSV %s lists %d scan(s) more than once (e.g. '%s'); kept, as the original code does",
                    csv_path, len(repeated), repeated[0])
    if as_t1:
        LOG.info("split CSV %s: %d row(s) under %s read as T1 under mode: %s (T1 only there; the originals "
                 "read them so)", csv_path, as_t1, "/".join(sorted(T1_ONLY_FOLDERS)), mode.value)
    if keep is not None:
        LOG.info("split CSV %s: %d row(s) kept, %d without a T2 scan in %s dropped", csv_path, len(out), dropped, keep_list)
        if not out:
            raise UserInputError(f"split CSV {csv_path}: no row's img_name is listed in keep_list {keep_list}; "
                                 "check that the two files describe the same subjects")
    return out


def read_file_list(
    csv_paths: str | os.PathLike | Sequence[str | os.PathLike], data_root: str | os.PathLike | None
) -> list[Path]:
    """iml-dl layout: the `filename` column of one or several CSVs, concatenated, resolved."""
    if isinstance(csv_paths, (str, os.PathLike)):
        csv_paths = [csv_paths]
    files: list[Path] = []
    for csv_path in csv_paths:
        csv_path = _config_path(str(csv_path), data_root)
        files += [resolve(r["filename"], data_root, f"split CSV {csv_path} line {line}")
                  for line, r in _read_rows(csv_path, ("filename",))]
    return files
