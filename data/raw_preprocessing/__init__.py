"""Raw scan -> the volume layout the paper configs read (`uad preprocess`).

The papers' steps in order, one module each: reorient to RAS (`data.nifti_io`), resample
to 1 mm (`resample`), skull strip (`skull_strip`, deepbet), affine registration to a
template (`registration`, SimpleITK; labels nearest neighbour), crop to the brain box
(`crop`), N4 bias correction inside the mask (`bias`). `pipeline` runs them per subject
(parallel, resumable) and records in `transform.json` everything `predict` needs to map
a result back onto the raw scan's own grid (`inverse`).
"""
