"""Conversion helpers shared by the metrics and the post-processing steps."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

ArrayLike = np.ndarray | torch.Tensor


def to_numpy(x: Any) -> np.ndarray:
    """Return ``x`` as a numpy array (a view where possible, never modified).

    Tensors are detached and moved to the CPU; dtypes numpy lacks (bfloat16) become float32.
    """
    if isinstance(x, torch.Tensor):
        x = x.detach()
        if x.dtype == torch.bfloat16:
            x = x.float()
        return x.cpu().numpy()
    return np.asarray(x)


def like_input(result: np.ndarray, reference: Any) -> ArrayLike:
    """Return the float map ``result`` as the type of ``reference``: a tensor (same device,
    and its dtype if floating) or an ndarray (its dtype if floating); else float32."""
    if isinstance(reference, torch.Tensor):
        dtype = reference.dtype if reference.is_floating_point() else torch.float32
        return torch.from_numpy(np.ascontiguousarray(result)).to(device=reference.device, dtype=dtype)
    ref_dtype = np.asarray(reference).dtype
    dtype = ref_dtype if np.issubdtype(ref_dtype, np.floating) else np.float32
    return result.astype(dtype, copy=False)


def as_float(x: np.ndarray) -> np.ndarray:
    """``x`` if float32/float64, else a float32 copy (scipy filters lack float16, bool)."""
    return x if x.dtype in (np.float32, np.float64) else x.astype(np.float32)


def as_list(volumes: Any) -> list[np.ndarray]:
    """One array or a sequence of arrays -> list of numpy arrays."""
    if isinstance(volumes, (np.ndarray, torch.Tensor)):
        return [to_numpy(volumes)]
    if isinstance(volumes, Sequence):
        return [to_numpy(v) for v in volumes]
    return [to_numpy(v) for v in list(volumes)]


def flat_concat(volumes: Any) -> np.ndarray:
    """One array or a sequence of arrays -> one flat array of all their elements (pooled)."""
    arrays = as_list(volumes)
    if len(arrays) == 1:
        return arrays[0].reshape(-1)
    return np.concatenate([a.reshape(-1) for a in arrays])


def check_same_shape(a: np.ndarray, b: np.ndarray, names: str) -> None:
    """Raise ValueError unless ``a`` and ``b`` have the same shape."""
    if a.shape != b.shape:
        raise ValueError(f"{names}: shapes differ, {a.shape} vs {b.shape}")
