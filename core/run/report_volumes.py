"""The volumes of a report page: which NIfTI files a volume has, the layers and panels drawn from them,
and the byte budget that keeps the page small (core.run.report builds the pages)."""
from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from core.evaluation.result import INPUT_GRID_KEY
from core.evaluation.volume_files import SUFFIXES
from data.nifti_io import load_nifti
from dl_utils.report import html
from dl_utils.report.volumes import Layer, LayerKind, Panel, viewer


class Budget:
    """Bytes of volume data the page may still take."""

    def __init__(self, max_bytes: int, max_side: int) -> None:
        self.left, self.max_side, self.drawn, self.skipped = max_bytes, max_side, 0, []

    def add(self, viewer_id: str, title: str, volume: Callable[[], tuple[dict[str, Layer], list[Panel], Any]],
            image_2d: bool = False) -> str:
        """The viewer of `volume()` (layers, panels, spacing; read only while bytes are left), or '' past the budget;
        `image_2d`: it is one 2D image (`images_2d` says which are), drawn as one picture."""
        if self.left <= 0:
            self.skipped.append(title)
            return ""
        layers, panels, spacing = volume()
        body, size = viewer(viewer_id, title, layers, panels, spacing, self.max_side, image_2d=image_2d)
        if size > self.left:
            self.left = 0
            self.skipped.append(title)
            return ""
        self.left -= size
        self.drawn += 1
        return body

    def note(self) -> str:
        if not self.skipped:
            return ""
        return (f"<p class=\"note\">{len(self.skipped)} more volume(s) not drawn, to keep this file small "
                f"(<code>uad report FOLDER --max-mb N</code> draws more): {html.esc(', '.join(self.skipped))}</p>")


def images_2d(task_results: Mapping[str, Any], dataset: str) -> bool:
    """Whether a data set of a task (its entry in results.json) holds 2D images: its recorded input grid
    has image-list reading settings (`core.evaluation.result.InputGrid.reading`); a set without a grid
    (a healthy set) is 2D when the task's other sets are, as one data module gives a task its sets."""
    def reading(entry: Any) -> bool | None:
        grid = entry.get(INPUT_GRID_KEY) if isinstance(entry, Mapping) else None
        return None if not isinstance(grid, Mapping) else grid.get("reading") is not None

    own = reading(task_results.get(dataset))
    if own is not None:
        return own
    return any(reading(entry) for entry in task_results.values())


def read_nifti(path: Path, role: str) -> tuple[np.ndarray, tuple[float, float, float]] | None:
    """(voxels, spacing) of a NIfTI file of the page, None when the run did not write it."""
    if not path.is_file():
        return None
    loaded = load_nifti(path, role)
    return loaded.data, loaded.spacing


@dataclass(frozen=True)
class VolumeFiles:
    """The NIfTI files of one volume: a map is required, the rest optional."""

    name: str
    folder: Path

    def path(self, key: str) -> Path:
        return self.folder / f"{self.name}{SUFFIXES[key]}"

    def read(self, key: str) -> tuple[np.ndarray, tuple[float, float, float]] | None:
        return read_nifti(self.path(key), f"report {key}")


def map_names(folder: Path) -> list[str]:
    return sorted(p.name[: -len(SUFFIXES["map"])] for p in folder.glob(f"*{SUFFIXES['map']}")) if folder.is_dir() else []


def round_robin(groups: dict[Any, list[Any]]) -> Iterator[tuple[Any, Any]]:
    """One item of each group in turn, so every test set is drawn before the budget runs out."""
    lists = {k: list(v) for k, v in groups.items()}
    while any(lists.values()):
        for key, items in lists.items():
            if items:
                yield key, items.pop(0)


def volume_layers(files: VolumeFiles, labels_key: str = "labels") -> tuple[dict[str, Layer], list[Panel], Any]:
    """Layers and panels of one volume: input, reconstruction, map, input + outline."""
    amap, spacing = files.read("map")
    layers = {"map": Layer(amap, LayerKind.MAP)}
    panels = []
    for key, kind in (("input", LayerKind.INTENSITY), ("reconstruction", LayerKind.INTENSITY), (labels_key, LayerKind.MASK)):
        got = files.read(key)
        if got is not None and got[0].shape == amap.shape:
            layers[key] = Layer(got[0], kind)
    panels.append(Panel("input", "input" if "input" in layers else None, note="not written"))
    panels.append(Panel("reconstruction", "reconstruction" if "reconstruction" in layers else None,
                        note="none (model-free scorer)" if "input" in layers else "not written"))
    panels.append(Panel("anomaly map", "map"))
    outline = "ground truth" if labels_key == "labels" else "predicted mask"
    if labels_key in layers:
        panels.append(Panel(f"{'input' if 'input' in layers else 'map'} + {outline}", "input" if "input" in layers else "map",
                            outline=labels_key))
    return layers, panels, spacing


def compared_layers(entries: list[tuple[str, VolumeFiles]]) -> tuple[dict[str, Layer], list[Panel], Any]:
    """Input and ground truth once (from the first method that wrote them), then each method's map and reconstruction."""
    layers: dict[str, Layer] = {}
    spacing = None
    shape = None
    for column, files in entries:
        amap, spacing_here = files.read("map")
        shape = shape or amap.shape
        spacing = spacing or spacing_here
        if amap.shape != shape:
            continue
        layers[f"{column}: map"] = Layer(amap, LayerKind.MAP)
        for key, kind in (("input", LayerKind.INTENSITY), ("labels", LayerKind.MASK)):
            got = files.read(key) if key not in layers else None
            if got is not None and got[0].shape == shape:
                layers[key] = Layer(got[0], kind)
        rec = files.read("reconstruction")
        if rec is not None and rec[0].shape == shape:
            layers[f"{column}: reconstruction"] = Layer(rec[0], LayerKind.INTENSITY)
    base = "input" if "input" in layers else next(iter(layers))
    panels = [Panel("input", "input" if "input" in layers else None, note="not written")]
    if "labels" in layers:
        panels.append(Panel(f"{base} + ground truth", base, outline="labels"))
    panels += [Panel(k, k) for k in layers if k.endswith(": map")]
    panels += [Panel(k, k) for k in layers if k.endswith(": reconstruction")]
    return layers, panels, spacing
