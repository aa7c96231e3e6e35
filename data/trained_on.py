"""What a model was trained on, and where a scan to score differs from it.

`TrainedOn` is the record a training run writes into its checkpoints (`trained_on`): the
training split, how many volumes it holds (and subjects, counted only from a subject-id column
of the split CSV: the demo's two volumes are one brain and its mirror image), their contrast, and the grid the
model saw (shape and voxel spacing of a training volume after the data loader's
preprocessing). `scan_warnings` compares a scan's header with it, so `uad predict` can say
when a map is likely to be about the scan rather than about anomalies: another contrast
(named in the file name or the NIfTI description; a scan naming none is "contrast unknown"), a field of view smaller than the
training volumes', slices much thicker than the training grid's voxels.
"""
from __future__ import annotations

import re
from dataclasses import MISSING, asdict, dataclass, fields
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import torch

from data.nifti_io import header_description
from dl_utils.csv_files import read_csv
from dl_utils.errors import UserInputError
from dl_utils.param_ranges import GridSide, NonNegativeInt, PositiveFloat
from dl_utils.param_types import constructor_hints, mismatch

FOV_FRACTION = 0.9     # a scan covering less than this share of the training extent on an axis
THICKNESS_FACTOR = 1.5  # slices thicker than this many times the training grid's coarsest spacing
RAS_AXES = ("left-right", "posterior-anterior", "inferior-superior")
SUBJECT_COLUMNS = ("subject", "subject_id", "participant_id")  # a split CSV column naming each row's subject

# file-name / description words -> contrast; the first family found wins (post-contrast before T1; T2* before T2)
CONTRAST_WORDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("t1 post-contrast", ("t1ce", "t1c", "t1gd", "t1post", "t1wce", "gd", "gad", "gado", "gadolinium", "ce", "post", "postcon",
                          "postcontrast", "postgd", "postgad", "contrast", "kontrast", "km", "+c", "+gd", "+gad", "+contrast",
                          "+km")),  # km: Kontrastmittel ("T1-KM"); "C+" and "+ C" are read as "+c"
    ("flair", ("flair",)),
    ("t2* / swi", ("t2star", "t2s", "t2*", "swi", "swan")),
    ("dwi", ("dwi", "dti", "adc", "trace", "diffusion")),
    ("t2", ("t2", "t2w")),
    ("pd", ("pd", "pdw")),
    ("t1", ("t1", "t1w", "mprage", "spgr", "tfl")),
)
PRE_CONTRAST_WORDS = ("pre", "precon", "precontrast", "native", "nativ", "noncon", "noncontrast", "nonenhanced",
                      "unenhanced")  # "T1 pre contrast", "T1 noncontrast": no post-contrast family
NEGATIONS = ("without", "wo", "no", "non", "ohne")  # "WITHOUT CONTRAST", "W/O GAD", "non-contrast", "ohne KM"
NEGATION_REACH = 2  # a post-contrast word within this many words after a negation is negated ("without IV contrast")
WORD = re.compile(r"\+[a-z]+|[a-z0-9]+\*?")  # words of letters and digits; "+c" / "+gd" and "t2*" keep their sign
NUMBERED = re.compile(r"b\d+")  # a diffusion weighting, "DWI_b1000"
SPELLINGS = (  # notations rewritten before the text is split into words
    (re.compile(r"\bw/o\b"), " without "),                       # "T1 W/O GAD"
    (re.compile(r"\bw/"), " with "),                               # "T1 W/ GAD"
    (re.compile(r"(?<![a-z0-9+])(c|gd|gad|km)\s*\+"), r" +\1 "),   # "T1 C+", "Gd+"
    (re.compile(r"\+\s+(?=(c|gd|gad|contrast|km)\b)"), "+"),       # "ax t1 + c"
    (re.compile(r"(?<![a-z])(ax|cor|sag)(?=t1|t2|flair|pd|dwi|swi)"), r"\1 "),  # fastMRI's "AXT2", "AXT1POST", "AXFLAIR"
    (re.compile(r"(?<![a-z])(t1|t2)(pre)(?![a-z])"), r"\1 \2"),  # fastMRI's "AXT1PRE": t1 before contrast
)


@dataclass(frozen=True)
class TrainedOn:
    """The training data of a checkpoint, as plain values (`to_plain` / `from_plain`)."""

    dataset: str                           # the training split as configured, e.g. data/demo/splits/train_healthy.csv
    volumes: NonNegativeInt                # rows of the training split
    subjects: NonNegativeInt | None        # distinct values of its subject column; None: the CSV has none
    contrast: str                          # t1 | t2 (the data module's `mode`), "unknown" when not stated
    grid_shape: tuple[GridSide, GridSide, GridSide] | None  # (H, W, D) of a training volume as the model saw it
    spacing_mm: tuple[PositiveFloat, PositiveFloat, PositiveFloat] | None  # its voxel spacing (RAS axes)
    note: str = ""                         # what the numbers cannot say, stated by whoever ships the weights
    subject_column: str = ""               # the column `subjects` was counted from

    @property
    def extent_mm(self) -> tuple[float, ...] | None:
        if self.grid_shape is None or self.spacing_mm is None:
            return None
        return tuple(n * s for n, s in zip(self.grid_shape, self.spacing_mm))

    def summary(self) -> str:
        """One line for a person: data set, volumes (and subjects when known), contrast, grid."""
        grid = ""
        if self.grid_shape is not None:
            grid = ", grid " + " x ".join(map(str, self.grid_shape))
            if self.spacing_mm is not None:
                grid += " at " + " x ".join(f"{s:.3g}" for s in self.spacing_mm) + " mm"
        counts = f"{self.volumes} volume{'' if self.volumes == 1 else 's'}"
        if self.subjects is not None:
            counts += f", {self.subjects} subject{'' if self.subjects == 1 else 's'}"
        note = f" ({self.note})" if self.note else ""
        return f"{self.dataset} ({counts}), {self.contrast.upper()}{grid}{note}"

    def to_plain(self) -> dict[str, Any]:
        plain = asdict(self)
        for key in ("grid_shape", "spacing_mm"):
            plain[key] = list(plain[key]) if plain[key] is not None else None
        return plain

    @classmethod
    def from_plain(cls, plain: Any) -> TrainedOn:
        """A stored record, each field checked against its hint as a config value is (a checkpoint may come
        from someone else): ValueError naming the field when one is missing or off. One written before
        `subject_column` existed counted distinct img_name as subjects (the demo's mirror image as a second
        subject), so its `subjects` is dropped as unknown."""
        if not isinstance(plain, dict):
            raise ValueError(f"expected a mapping {{dataset, volumes, subjects, contrast, grid_shape, spacing_mm}}, "
                             f"got {type(plain).__name__}")
        missing = [key for key in ("dataset", "volumes", "contrast") if key not in plain]
        if missing:
            raise ValueError(f"{missing[0]}: missing")
        values = {f.name: plain.get(f.name, f.default if f.default is not MISSING else None) for f in fields(cls)}
        values["grid_shape"] = values["grid_shape"] or None  # an empty record of an older run: not stated
        values["spacing_mm"] = values["spacing_mm"] or None
        if "subject_column" not in plain:
            values["subjects"] = None
        hints = constructor_hints(cls)
        for name, value in values.items():
            why = mismatch(value, hints[name])
            if why:
                raise ValueError(f"{name}: {why}")
        for key in ("grid_shape", "spacing_mm"):
            values[key] = None if values[key] is None else tuple(values[key])
        return cls(**values)


def stated(plain: dict[str, Any]) -> dict[str, Any]:
    """A stored record as a page shows it: read through `TrainedOn.from_plain` (so an older record's
    over-counted subjects are dropped), without the entries that are unknown; as stored if it is not one."""
    try:
        record = TrainedOn.from_plain(plain).to_plain()
    except (KeyError, TypeError, ValueError):
        return dict(plain)
    return {k: v for k, v in record.items() if v not in (None, "")}


def from_data_module(data_module: Any) -> TrainedOn:
    """The record of a training data module: its split CSV read and its first volume loaded
    exactly as training loads it (`VolumeDataModule`); other modules give what they state."""
    from data.volume_dataset import VolumeDataModule

    csv = getattr(data_module, "train_csv", "?")
    root = getattr(data_module, "data_root", None)
    names = csv if isinstance(csv, (list, tuple)) else [csv]
    dataset = ", ".join(str(Path(root) / str(n)) if root else str(n) for n in names)
    contrast = str(getattr(data_module, "mode", "unknown") or "unknown")
    if not isinstance(data_module, VolumeDataModule):
        reading = getattr(data_module, "reading", None)  # 2D images (`ImageListDataModule`): one slice of target_size
        size = getattr(reading, "target_size", None)
        grid = (int(size[0]), int(size[1]), 1) if size is not None else None
        if contrast == "unknown" and csv != "?":
            contrast = _images_contrast(names, root)
        return TrainedOn(dataset, _rows(names, root), None, contrast, grid, None)
    from data.csv_splits import read_volume_split
    from data.preprocessing import VolumePreprocessor
    from data.volume_dataset import load_volume

    rows = read_volume_split(data_module.train_csv, data_module.data_root, data_module.mode, data_module.keep_list)
    contrast = _contrast_read(data_module, rows, contrast)
    with torch.random.fork_rng(devices=[]):  # loading (torchio) draws from torch's RNG: the run's draws stay as they were
        first = load_volume(rows[0], VolumePreprocessor(**data_module.preprocessing))
    spacing = tuple(round(float(s), 4) for s in np.linalg.norm(np.asarray(first.affine)[:3, :3], axis=0))
    column, subject_of = _subject_ids(data_module.train_csv, data_module.data_root)
    subjects = len({subject_of.get(r.img_name, r.img_name) for r in rows}) if column else None
    return TrainedOn(dataset, len(rows), subjects, contrast, tuple(int(n) for n in first.image.shape), spacing,
                     subject_column=column)


def _images_contrast(csvs: list[Any], root: Any) -> str:
    """The contrast the first training image's path names (`brain/AXT2/file_001.png`: t2), else "unknown":
    an image file has no header, so its path is all there is (the volume path reads the header too)."""
    from data.csv_splits import read_file_list

    try:
        files = read_file_list([str(c) for c in csvs], root)
    except (UserInputError, OSError):
        return "unknown"
    if not files:
        return "unknown"
    first, base = Path(files[0]).resolve(), Path(root).resolve() if root else None
    named = str(first.relative_to(base)) if base is not None and first.is_relative_to(base) else first.name
    return scan_contrast(named) or "unknown"


def _contrast_read(data_module: Any, rows: list[Any], mode: str) -> str:
    """The contrast training read: `mode` where it chose the scans (t1, or `t1` paths rewritten as the
    originals' `mode: t2` does); a split it does not rewrite is read as given, and then the contrast is
    what the first scan's name or description says, else "unknown", never a mode that was not applied
    (the demo's T1 volumes under a paper config's `mode: t2`)."""
    from data.csv_splits import Contrast, mode_rewrites

    if mode == Contrast.T1.value or mode_rewrites(data_module.train_csv, data_module.data_root, data_module.mode):
        return mode
    header = ScanHeader.read(rows[0].img_path, rows[0].img_name)
    return scan_contrast(header.name, header.description) or "unknown"


def _subject_ids(train_csv: str, data_root: Any) -> tuple[str, dict[str, str]]:
    """The split CSV's subject column (`SUBJECT_COLUMNS`, any case) and img_name -> subject; ("", {}) without one."""
    from data.csv_splits import _config_path

    table = read_csv(_config_path(str(train_csv), data_root), "give the training split CSV as UTF-8 text")
    fields = {f.lower(): f for f in table.columns}
    column = next((fields[c] for c in SUBJECT_COLUMNS if c in fields), "")
    if not column:
        return "", {}
    return column, {row.get("img_name", ""): row.get(column, "") for _, row in table.rows}


def _rows(names: list[Any], root: Any) -> int:
    count = 0
    for name in names:
        path = Path(root) / str(name) if root else Path(str(name))
        if path.is_file():
            count += max(0, len([line for line in path.read_text().splitlines() if line.strip()]) - 1)
    return count


# ---- a scan against the record -------------------------------------------------------------
@dataclass(frozen=True)
class ScanHeader:
    """What a scan's header says: its name, description, voxel spacing and extent per RAS axis."""

    name: str
    description: str
    spacing_mm: tuple[float, float, float]  # per RAS axis
    extent_mm: tuple[float, float, float]   # per RAS axis

    @classmethod
    def read(cls, path: str | Path, name: str | None = None) -> ScanHeader:
        img = nib.load(str(path))
        return cls.from_affine(name or Path(path).name, header_description(img), tuple(img.shape[:3]), np.asarray(img.affine))

    @classmethod
    def from_affine(cls, name: str, description: str, shape: tuple[int, ...], affine: np.ndarray) -> ScanHeader:
        """Spacing and extent of each voxel axis, put on the RAS axis it runs along most."""
        zooms = np.linalg.norm(affine[:3, :3], axis=0)
        order = nib.orientations.io_orientation(affine)[:, 0].astype(int)  # voxel axis j -> world axis order[j]
        spacing, extent = [0.0] * 3, [0.0] * 3
        for j, world in enumerate(order):
            spacing[world], extent[world] = float(zooms[j]), float(zooms[j] * shape[j])
        return cls(name, description, (spacing[0], spacing[1], spacing[2]), (extent[0], extent[1], extent[2]))


def scan_contrast(*texts: str) -> str | None:
    """The contrast a file name or header description names (`sub1_T1CE.nii.gz`, `T1_MPRAGE_POST`, `t1+c`,
    `T1 C+`, `T1-KM`: t1 post-contrast; `T1 WITHOUT CONTRAST`, `T1 W/O GAD`, `non-contrast`, `T1 pre`: not;
    `T2star`, `SWI`: t2*; `DWI_b1000`: dwi), or None when they name none."""
    words = {w for text in texts for w in _words(text)}
    words |= {"dwi" for w in words if NUMBERED.fullmatch(w)}
    families = CONTRAST_WORDS[1:] if words & set(PRE_CONTRAST_WORDS) else CONTRAST_WORDS
    for contrast, family in families:
        if words & set(family):
            return contrast
    return None


def _words(text: str) -> list[str]:
    """The words of one text, lower case, its notations rewritten (`SPELLINGS`) and each post-contrast word
    that a negation reaches (`NEGATIONS`, `NEGATION_REACH`) dropped: "T1 WITHOUT CONTRAST" is t1 words only."""
    text = text.lower()
    for pattern, replacement in SPELLINGS:
        text = pattern.sub(replacement, text)
    words = WORD.findall(text)
    post = set(CONTRAST_WORDS[0][1])
    return [w for i, w in enumerate(words)
            if w not in post or not set(words[max(0, i - NEGATION_REACH):i]) & set(NEGATIONS)]


def scan_warnings(trained: TrainedOn, scan: ScanHeader) -> list[str]:
    """Each way the scan differs from the training data, one sentence each (empty: none found)."""
    warnings = []
    contrast = scan_contrast(scan.name, scan.description)
    known = trained.contrast.lower() != "unknown"
    if known and contrast is None:
        warnings.append(f"contrast unknown: neither the scan's name nor its description names one (t1, t1ce, t2, flair, ...), "
                        f"the model was trained on {trained.contrast.upper()}; another contrast will score as anomalies")
    elif known and contrast != trained.contrast.lower():
        warnings.append(f"contrast: the scan looks {contrast.upper()} (its name or description), the model was trained "
                        f"on {trained.contrast.upper()}; contrast differences will score as anomalies")
    if trained.spacing_mm is not None:
        coarsest = max(trained.spacing_mm)
        thickest = max(scan.spacing_mm)
        if thickest > THICKNESS_FACTOR * coarsest:
            axis = RAS_AXES[int(np.argmax(scan.spacing_mm))]
            warnings.append(f"slice thickness: {thickest:.3g} mm along {axis}, the model's grid has "
                            f"{coarsest:.3g} mm voxels; structures thinner than the slices are blurred or lost")
    extent = trained.extent_mm
    if extent is not None:
        short = [(RAS_AXES[i], scan.extent_mm[i], extent[i]) for i in range(3) if scan.extent_mm[i] < FOV_FRACTION * extent[i]]
        for axis, have, want in short:
            warnings.append(f"field of view: the scan covers {have:.0f} mm {axis}, the training volumes {want:.0f} mm; "
                            "brain outside the scan is missing from the map")
    return warnings
