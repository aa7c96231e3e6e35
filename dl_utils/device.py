"""Device resolution: `auto | cpu | cuda[:N]`, never assuming CUDA."""
from __future__ import annotations

import torch

from dl_utils.errors import UserInputError


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """Map a config value to a device; `auto` picks CUDA only when it is available."""
    name = str(name).strip().lower()
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cpu":
        return torch.device("cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise UserInputError(
                f"device: '{name}' was requested but CUDA is not available; set `device: auto` or `device: cpu`"
            )
        if name == "cuda":
            return torch.device("cuda", local_rank % torch.cuda.device_count())
        return torch.device(name)
    raise UserInputError(f"device: unknown value '{name}'; use one of auto, cpu, cuda")
