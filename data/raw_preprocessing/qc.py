"""Three-plane pictures: the QC montage of a preprocessed subject and predict's map overlay."""
from __future__ import annotations

from pathlib import Path

import numpy as np


def _planes(array: np.ndarray, center: tuple[int, int, int]) -> list[np.ndarray]:
    """Sagittal, coronal and axial slices through `center` of an (X, Y, Z) RAS array, display-oriented;
    an (H, W, 1) array is one 2D image (rows, columns as its file had them): that image alone."""
    if array.shape[2] == 1:
        return [array[:, :, 0]]
    x, y, z = center
    return [np.rot90(array[x, :, :]), np.rot90(array[:, y, :]), np.rot90(array[:, :, z])]


def three_plane_png(path: str | Path, image: np.ndarray, mask: np.ndarray | None = None,
                    overlay: np.ndarray | None = None, title: str = "", overlay_label: str = "anomaly score") -> None:
    """PNG with three planes through the mask's centre (one for a 2D image, (H, W, 1)): the image in grey,
    `overlay` in colour with a colour bar, the outline of `mask` in red."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from dl_utils.checkpoint import atomic_write_bytes

    ref = mask if mask is not None and mask.any() else image > 0
    center = tuple(int(round(c)) for c in np.argwhere(ref).mean(0)) if ref.any() else tuple(s // 2 for s in image.shape)
    planes = _planes(image, center)
    fig, axes = plt.subplots(1, len(planes), figsize=(10, 3.6) if len(planes) > 1 else (6.0, 4.4), squeeze=False)
    axes = list(axes[0])
    shown = None
    for ax, plane_img, plane_mask, plane_over in zip(
        axes, planes, _planes(mask, center) if mask is not None else [None] * len(planes),
        _planes(overlay, center) if overlay is not None else [None] * len(planes),
    ):
        ax.imshow(plane_img, cmap="gray")
        if plane_over is not None:
            vmax = float(np.percentile(overlay[overlay > 0], 99.5)) if (overlay > 0).any() else 1.0
            shown = ax.imshow(np.ma.masked_less_equal(plane_over, 0), cmap="inferno", vmin=0, vmax=vmax, alpha=0.8)
        if plane_mask is not None and plane_mask.any():
            ax.contour(plane_mask.astype(float), levels=[0.5], colors="red", linewidths=0.8)
        ax.axis("off")
    if shown is not None:
        fig.colorbar(shown, ax=axes, shrink=0.8, label=overlay_label)
    fig.suptitle(title, fontsize=9)
    import io

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=80)
    plt.close(fig)
    atomic_write_bytes(path, buffer.getvalue())
