"""Scored data sets with memory independent of their size, sharded over torchrun ranks.

Each rank scores volumes i with i % world_size == rank (seeded per volume, so the maps do
not depend on the sharding); in rounds, rank 0 gathers one volume per rank through
torch.distributed and stores it in global order: the map and masks go to a scratch folder
(`VolumeStore`), the brain / whole-volume voxels to exact on-disk score spills, and only a
small `VolumeRecord` of scalars stays in memory (plus the slices of a few figure cases).
"""
from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from core.evaluation.contracts import ImageReadingSet
from core.evaluation.pipeline import ScoringPipeline
from core.evaluation.reconstruction import reconstruction_quality
from core.evaluation.volume_files import save_volumes
from data.nifti_io import save_nifti
from data.volume import Volume
from dl_utils.checkpoint import writing
from dl_utils.distributed import DistributedContext, gather_to_main
from dl_utils.paths import inside
from dl_utils.progress import progress
from optim.metrics import ranking
from optim.metrics.streaming import ScoreSpill

LOG = logging.getLogger(__name__)


@dataclass
class VolumeRecord:
    """Scalars of one scored volume (Dice per threshold protocol is added later)."""

    index: int
    name: str
    label: int
    lesion_voxels: int | None  # None: unlabelled
    sample_score: float
    seconds: float
    map_max: float
    metrics: dict[str, float] = field(default_factory=dict)  # per-volume AUPRC / AUROC
    quality: dict[str, float] | None = None
    case: dict[str, Any] | None = None  # figure slices: image, reconstruction, amap, seg, title, image_2d


class VolumeStore:
    """Per-volume map (float32) and bit-packed brain mask / lesion labels as .npz files."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)

    def put(self, index: int, amap: np.ndarray, mask: np.ndarray, seg: np.ndarray | None,
            regions: dict[str, np.ndarray] | None = None) -> None:
        arrays = {"amap": amap, "mask": np.packbits(mask.ravel())}
        if seg is not None:
            arrays["seg"] = np.packbits(seg.ravel())
        arrays.update(regions or {})  # RA's boxes: seg_weights (float32), negative (bit-packed)
        path = self.folder / f"{index:07d}.npz"
        with writing(path):  # a scratch file (removed with the folder): a full disk names it
            np.savez(path, **arrays)

    def box_regions(self, index: int) -> tuple[np.ndarray, np.ndarray] | None:
        """(box weights float32, non-lesion region bool) of RA's annotations, or None."""
        with np.load(self.folder / f"{index:07d}.npz") as data:
            if "negative" not in data:
                return None
            weights = data["seg_weights"]
            return weights, np.unpackbits(data["negative"], count=weights.size).astype(bool).reshape(weights.shape)

    def get(self, index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        with np.load(self.folder / f"{index:07d}.npz") as data:
            amap = data["amap"]
            n = amap.size
            mask = np.unpackbits(data["mask"], count=n).astype(bool).reshape(amap.shape)
            seg = np.unpackbits(data["seg"], count=n).astype(bool).reshape(amap.shape) if "seg" in data else None
        return amap, mask, seg


@dataclass
class ScoredSet:
    """One scored data set on rank 0: records in memory, maps and voxel scores on disk."""

    name: str
    folder: Path
    records: list[VolumeRecord]
    brain: ScoreSpill  # brain voxels of every volume (labels: lesion, or all healthy)
    whole: ScoreSpill  # every voxel of the labelled volumes
    lesion_voxels_total: int

    @property
    def labelled(self) -> list[VolumeRecord]:
        return [r for r in self.records if r.lesion_voxels is not None]

    def volumes(self, labelled_only: bool = True) -> Iterator[tuple[VolumeRecord, np.ndarray, np.ndarray, np.ndarray | None]]:
        """(record, map, mask, seg) read back from the scratch folder, one at a time."""
        store = VolumeStore(self.folder / "volumes")
        for record in self.labelled if labelled_only else self.records:
            yield (record, *store.get(record.index))

    def box_regions(self, record: VolumeRecord) -> tuple[np.ndarray, np.ndarray] | None:
        """RA's box weights and non-lesion region of a volume (Volume.seg_weights / negative), or None."""
        return VolumeStore(self.folder / "volumes").box_regions(record.index)

    def remove(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


def _per_volume_metrics(amap: np.ndarray, mask: np.ndarray, seg: np.ndarray) -> dict[str, float]:
    """AUPRC / AUROC over all voxels of the volume (the papers' per-volume values) and over
    its brain voxels; NaN where a class is missing."""
    if not seg.any():
        return {"AUPRC": float("nan"), "AUROC": float("nan"), "AUPRC_brain": float("nan"), "AUROC_brain": float("nan")}
    return {"AUPRC": ranking.auprc(amap, seg), "AUROC": ranking.auroc(amap, seg),
            "AUPRC_brain": ranking.auprc(amap[mask], seg[mask]), "AUROC_brain": ranking.auroc(amap[mask], seg[mask])}


def _score_one(pipeline: ScoringPipeline, set_name: str, index: int, volume: Volume, figure_cases: int,
               keep_volumes: bool, image_2d: bool = False) -> dict[str, Any]:
    """One volume scored, as the (small) item a rank sends to rank 0; `keep_volumes`: with the
    input and mean reconstruction for the files beside its map; `image_2d`: it is a 2D image (its set
    an `ImageReadingSet`), its figure case marked so (drawn as its file has it)."""
    started = time.perf_counter()
    scored = pipeline.score(volume, set_name, index)  # seeded from (seed, set, index): any sharding
    amap, recs = scored.amap, scored.reconstructions
    mask = volume.mask.bool().numpy()
    seg = None if volume.seg is None else volume.seg.bool().numpy()
    mean_rec = recs.mean(0) if recs.shape[0] > 0 else None
    quality = reconstruction_quality(volume.image.float(), mean_rec, volume.mask.bool()) if mean_rec is not None and mask.any() else None
    case = None
    if index < figure_cases:
        z = int(np.argmax(seg.sum(axis=(0, 1)))) if seg is not None and seg.any() else amap.shape[2] // 2
        case = {"image": volume.image[..., z].numpy().copy(), "amap": amap[..., z].copy(),
                "reconstruction": None if mean_rec is None else mean_rec[..., z].numpy().copy(),
                "seg": None if seg is None else seg[..., z].copy(), "title": str(volume.name) if image_2d else f"{volume.name} z={z}",
                "image_2d": image_2d}
    record = VolumeRecord(
        index=index, name=str(volume.name), label=int(volume.label),
        lesion_voxels=None if seg is None else int(seg.sum()),
        sample_score=pipeline.sample_score(amap, mask),
        seconds=time.perf_counter() - started, map_max=float(amap.max()) if amap.size else 0.0,
        metrics={} if seg is None else _per_volume_metrics(amap, mask, seg), quality=quality, case=case,
    )
    return {"record": record, "amap": amap, "mask": np.packbits(mask.ravel()), "seg": None if seg is None else np.packbits(seg.ravel()),
            "affine": np.asarray(volume.affine), "image": volume.image.float().numpy() if keep_volumes else None,
            "reconstruction": None if mean_rec is None or not keep_volumes else mean_rec.float().numpy(),
            "regions": _box_regions(volume)}


def _box_regions(volume: Volume) -> dict[str, np.ndarray] | None:
    """RA's annotation boxes as read and non-lesion region, for their FP figure (None without)."""
    negative, weights = volume.negative, volume.seg_weights
    if negative is None or weights is None:
        return None
    return {"seg_weights": weights.float().numpy(), "negative": np.packbits(negative.bool().numpy().ravel())}


def score_set(pipeline: ScoringPipeline, name: str, volumes: Sequence[Volume], ctx: DistributedContext,
              scratch: Path | None, maps_folder: Path | None = None, figure_cases: int = 0,
              keep_volumes: bool = False) -> ScoredSet | None:
    """Score every volume of `volumes` (sharded over ranks) with a prepared pipeline; rank 0
    returns the ScoredSet, other ranks None. `maps_folder`: write each map as NIfTI there (rank 0),
    with the input and mean reconstruction when `keep_volumes` (the same on every rank: each sends
    them); `figure_cases`: keep slices of the first volumes for figures."""
    n = len(volumes)
    image_2d = isinstance(volumes, ImageReadingSet)  # 2D images, read by recorded settings (not guessed from a shape)
    if ctx.is_main:
        LOG.info("scoring data set '%s' (%d volumes, %d rank%s)", name, n, ctx.world_size, "s" if ctx.enabled else "")
        folder = Path(scratch) / name
        store = VolumeStore(folder / "volumes")
        scored = ScoredSet(name, folder, [], ScoreSpill(folder / "brain"), ScoreSpill(folder / "whole"), 0)
    bar = progress(total=n, desc=f"scoring {name}", unit="vol") if ctx.is_main else None
    for start in range(0, n, ctx.world_size):
        index = start + ctx.rank
        item = (_score_one(pipeline, name, index, volumes[index], figure_cases, keep_volumes, image_2d)
                if index < n else None)
        gathered = gather_to_main(item, ctx)
        if not ctx.is_main:
            continue
        for item in gathered:
            if item is None:
                continue
            record, amap = item["record"], item["amap"]
            count = amap.size
            mask = np.unpackbits(item["mask"], count=count).astype(bool).reshape(amap.shape)
            seg = None if item["seg"] is None else np.unpackbits(item["seg"], count=count).astype(bool).reshape(amap.shape)
            store.put(record.index, amap, mask, seg, item.get("regions"))
            scored.brain.add(amap[mask], seg[mask] if seg is not None else np.zeros(int(mask.sum()), bool))
            if seg is not None:
                scored.whole.add(amap, seg)
                scored.lesion_voxels_total += int(seg.sum())
            if maps_folder is not None:
                save_nifti(inside(maps_folder, f"{record.name}_anomaly_map.nii.gz"), amap.astype(np.float32), item["affine"])
                save_volumes(Path(maps_folder), record.name, item["image"], item["reconstruction"], seg, item["affine"])
            scored.records.append(record)
            if bar is not None:
                bar.update(1)
    if bar is not None:
        bar.close()
    return scored if ctx.is_main else None
