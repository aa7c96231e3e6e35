"""3D volumes in the page: input, reconstruction, anomaly map and outlines in three planes,
each plane with a slice slider.

Each layer is thinned per axis, every `stride[axis]` voxels, so no side exceeds `max_side`
(an axis already that short keeps every voxel: a thick-slice scan keeps all its slices),
quantised to uint8 over its display window, zlib-compressed and base64-encoded; the page's
script inflates it and draws the chosen slice on canvases (no image per slice, so a slider
costs nothing in file size). Arrays are (X, Y, Z) in RAS order (axis 2 axial), as
`data.nifti_io.load_nifti` returns them; a 2D image (`image_2d`: the caller knows it from the
run's record, e.g. an image list's reading, never from the shape) is (rows, columns, 1) as its
file had them and is drawn as one picture, rows down and columns across, with no slider.
"""
from __future__ import annotations

import base64
import enum
import json
import math
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from dl_utils.report.html import esc, fmt

PLANES = ("axial", "coronal", "sagittal")  # slice along z, y, x
PLANE_AXIS = (2, 1, 0)
DISPLAY_PX = 200.0  # the longest physical side of a volume, in CSS pixels


class LayerKind(enum.StrEnum):
    INTENSITY = "intensity"  # gray, window [0, 1] (or the 0.5 / 99.5 percentiles outside it)
    MAP = "map"              # inferno, window [0, 99.5th percentile of its positive values]
    MASK = "mask"            # binary, drawn as an outline over another layer


@dataclass(frozen=True)
class Layer:
    array: np.ndarray  # (X, Y, Z)
    kind: LayerKind


@dataclass(frozen=True)
class Panel:
    """One picture per plane: `layer` drawn in its colours, `outline` (a mask layer) on top;
    `layer` None draws a placeholder saying `note` (e.g. a model-free method has no reconstruction)."""

    label: str
    layer: str | None
    outline: str | None = None
    note: str = ""


def display_window(array: np.ndarray, kind: LayerKind) -> tuple[float, float]:
    """The value range mapped to the 256 colours of a layer."""
    if kind == LayerKind.MASK:
        return 0.0, 1.0
    if kind == LayerKind.MAP:
        positive = array[array > 0]
        high = float(np.percentile(positive, 99.5)) if positive.size else 0.0
        return 0.0, high if high > 0 else 1.0
    low, high = float(array.min()), float(array.max())
    if low >= 0.0 and high <= 1.0:
        return 0.0, 1.0
    low, high = (float(v) for v in np.percentile(array, [0.5, 99.5]))
    return low, high if high > low else low + 1.0


def quantise(array: np.ndarray, window: tuple[float, float], kind: LayerKind) -> np.ndarray:
    """uint8 codes: 0 / 1 for a mask, else 0..255 linear over `window` (clipped)."""
    if kind == LayerKind.MASK:
        return (array > 0.5).astype(np.uint8)
    low, high = window
    return np.clip(np.rint((array - low) / (high - low) * 255.0), 0, 255).astype(np.uint8)


def stride_for(shape: Sequence[int], max_side: int) -> tuple[int, ...]:
    """Per axis, the smallest step that brings that side to at most `max_side` voxels (1 where it
    already fits), so a layer holds at most `max_side` ** 3 voxels."""
    return tuple(max(1, math.ceil(n / max(max_side, 1))) for n in shape)


def thinning_note(steps: Sequence[int], image_2d: bool = False) -> str:
    """The viewer title's note on the thinned axes, e.g. ' (every 2nd voxel along x and y)' or
    ' (every 2nd voxel along x, every 3rd along z)' (a 2D image: ' (every 2nd pixel along rows
    and columns)'); '' when every axis keeps every voxel."""
    names, unit = (("rows", "columns", "slices"), "pixel") if image_2d else ("xyz", "voxel")
    by_step: dict[int, list[str]] = {}
    for axis, step in zip(names, steps):
        if step > 1:
            by_step.setdefault(step, []).append(axis)
    parts = [f"{_ordinal(step)}{' ' + unit if not index else ''} along {_and(axes)}"
             for index, (step, axes) in enumerate(by_step.items())]
    return f" (every {', every '.join(parts)})" if parts else ""


def focus(layers: Mapping[str, Layer], shape: Sequence[int]) -> list[int]:
    """Initial slice per axis: where a mask layer has most voxels, else the maximum of the
    first map, else the middle."""
    for kind in (LayerKind.MASK, LayerKind.MAP):
        for layer in layers.values():
            if layer.kind == kind and np.any(layer.array > (0.5 if kind == LayerKind.MASK else 0)):
                if kind == LayerKind.MAP:
                    return [int(i) for i in np.unravel_index(int(np.argmax(layer.array)), layer.array.shape)]
                mask = layer.array > 0.5
                return [int(np.argmax(mask.sum(axis=tuple(a for a in range(3) if a != axis)))) for axis in range(3)]
    return [n // 2 for n in shape]


def encode(array: np.ndarray) -> str:
    return base64.b64encode(zlib.compress(np.ascontiguousarray(array).tobytes(), 6)).decode("ascii")


def viewer(viewer_id: str, title: str, layers: Mapping[str, Layer], panels: Sequence[Panel],
           spacing: Sequence[float] = (1.0, 1.0, 1.0), max_side: int = 128, image_2d: bool = False) -> tuple[str, int]:
    """HTML of one volume viewer (three planes x `panels`) and the bytes its data take; `image_2d`:
    the layers are one 2D image (rows, columns, 1), drawn as one plane as its file had it, no slider."""
    shapes = {tuple(layer.array.shape) for layer in layers.values()}
    if len(shapes) != 1 or len(next(iter(shapes))) != 3:
        raise ValueError(f"{viewer_id}: the layers must share one 3D shape, got {sorted(shapes)}")
    if image_2d and next(iter(shapes))[2] != 1:
        raise ValueError(f"{viewer_id}: a 2D image is (rows, columns, 1), got {next(iter(shapes))}")
    for panel in panels:
        for name in (panel.layer, panel.outline):
            if name is not None and name not in layers:
                raise ValueError(f"{viewer_id}: panel '{panel.label}' names layer '{name}', not given")
    full = next(iter(shapes))
    steps = stride_for(full, max_side)
    thin = tuple(slice(None, None, step) for step in steps)
    small = {name: Layer(np.asarray(layer.array, dtype=np.float32)[thin], layer.kind) for name, layer in layers.items()}
    shape = next(iter(small.values())).array.shape
    spacing = [float(s) * step for s, step in zip(spacing, steps)]  # the page draws each plane in mm
    windows = {name: display_window(layer.array, layer.kind) for name, layer in small.items()}
    spec = {
        "shape": [int(n) for n in shape], "spacing": spacing, "image2d": image_2d,
        "scale": DISPLAY_PX / max(n * s for n, s in zip(shape, spacing)),
        "panels": [{"layer": p.layer, "outline": p.outline,
                    "cmap": "inferno" if p.layer and small[p.layer].kind == LayerKind.MAP else "gray"}
                   for p in panels],
        "layers": {name: encode(quantise(layer.array, windows[name], layer.kind)) for name, layer in small.items()},
    }
    start = focus(small, shape)
    planes = []
    for plane, (name, axis) in enumerate(zip(PLANES[:1] if image_2d else PLANES, PLANE_AXIS)):
        figures = []
        for index, panel in enumerate(panels):
            if panel.layer is None:
                figures.append(f'<figure class="absent">{esc(panel.label)}<br>{esc(panel.note)}</figure>')
                continue
            kind = small[panel.layer].kind
            low, high = windows[panel.layer]
            legend = f" [{fmt(low, 3)}, {fmt(high, 3)}]" if kind == LayerKind.MAP else ""
            figures.append(f'<figure><canvas data-panel="{index}"></canvas>'
                           f"<figcaption>{esc(panel.label + legend)}</figcaption></figure>")
        head = (f'2D image, {full[0]} rows x {full[1]} columns' if image_2d else
                f'{name} <input type="range" class="slice" min="0" max="{shape[axis] - 1}" value="{start[axis]}" '
                f'aria-label="{esc(title)}: {name} slice"> <span class="slice-label"></span>')
        planes.append(f'<div class="plane" data-plane="{plane}"><div class="plane-head">{head}</div>'
                      f'<div class="panels">{"".join(figures)}</div></div>')
    data = json.dumps(spec).replace("</", "<\\/")
    note = thinning_note(steps, image_2d)
    body = (f'<div class="viewer" id="{esc(viewer_id)}" data-payload="{esc(viewer_id)}-data">'
            f"<h3>{esc(title)}{esc(note)}</h3>{''.join(planes)}</div>"
            f'<script type="application/json" id="{esc(viewer_id)}-data">{data}</script>')
    return body, len(data)


def _and(words: Sequence[str]) -> str:
    """['x'] -> 'x', ['x', 'y', 'z'] -> 'x, y and z'."""
    return words[-1] if len(words) == 1 else f"{', '.join(words[:-1])} and {words[-1]}"


def _ordinal(n: int) -> str:
    """2 -> 2nd, 3 -> 3rd, 11 -> 11th, 21 -> 21st."""
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"
