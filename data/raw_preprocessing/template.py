"""The registration template: nilearn's MNI152 2009 brain (installed package) or any NIfTI path."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from data.nifti_io import load_nifti

DEFAULT_TEMPLATE = "mni152"


@dataclass(frozen=True)
class Template:
    """A skull-stripped template brain and its mask on one 1 mm RAS grid."""

    name: str
    image: np.ndarray
    mask: np.ndarray
    affine: np.ndarray


def load_template(template: str = DEFAULT_TEMPLATE, mask: str | None = None) -> Template:
    """`mni152` (nilearn 0.14.1's 1 mm MNI152 brain and mask) or a brain image path (mask path
    optional; default: voxels > 0)."""
    if template == DEFAULT_TEMPLATE:
        from nilearn import datasets  # heavy import, only here

        img = datasets.load_mni152_template(resolution=1)
        brain = np.asarray(datasets.load_mni152_brain_mask(resolution=1).dataobj) > 0
        image = np.asarray(img.dataobj, np.float32) * brain
        import nibabel as nib

        canonical = nib.as_closest_canonical(nib.Nifti1Image(image, img.affine))
        mask_img = nib.as_closest_canonical(nib.Nifti1Image(brain.astype(np.uint8), img.affine))
        return Template(template, np.asarray(canonical.dataobj, np.float32), np.asarray(mask_img.dataobj) > 0,
                        canonical.affine)
    loaded = load_nifti(Path(template), "template")
    brain = load_nifti(Path(mask), "template mask").data > 0 if mask else loaded.data > 0
    return Template(str(template), loaded.data * brain, brain, loaded.affine)
